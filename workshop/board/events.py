"""What one run of a learner check reports, and what the board accepts.

The learner is never part of an event: the board takes them from the hub token the event came with.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

# The largest body the API reads: an event is about 200 bytes.
MAX_BODY_BYTES = 2048
EVENT_ID = re.compile(r"^[0-9a-f]{32}$")
FIELDS = {"id", "exercise", "check", "part", "passed", "duration_s", "hint"}
# A check that ran longer than a day did not run.
MAX_DURATION_S = 86_400.0


class InvalidEvent(ValueError):
    """The body is not an event the board can store; the message says why."""


@dataclass(frozen=True)
class ExerciseChecks:
    name: str
    title: str
    # The check that decides the exercise (its graded check), then its intermediate checks.
    check: str
    intermediate: tuple[str, ...]
    parts: tuple[str, ...]

    @property
    def checks(self) -> tuple[str, ...]:
        return (self.check, *self.intermediate)


@dataclass(frozen=True)
class Catalogue:
    """The exercises, their checks and the named mistakes (hint id -> label) that events may mention."""

    exercises: tuple[ExerciseChecks, ...]
    hints: Mapping[str, str]

    @classmethod
    def of_course(cls) -> Catalogue:
        """The course's own: the exercise table and the hints catalogue (imports the checks, so torch)."""
        from tests.exercises import EXERCISES
        from tests.hints import LABELS

        return cls(
            tuple(ExerciseChecks(e.name, e.title, e.check.__name__, tuple(c.__name__ for c in e.intermediate_checks), tuple(e.parts)) for e in EXERCISES),
            dict(LABELS),
        )

    def exercise(self, name: str) -> ExerciseChecks | None:
        return next((e for e in self.exercises if e.name == name), None)


@dataclass(frozen=True)
class Event:
    id: str
    exercise: str
    check: str
    part: str
    passed: bool
    duration_s: float
    hint: str | None


def parse_event(body: bytes, catalogue: Catalogue) -> Event:
    """The event in a request's body, or InvalidEvent saying what is wrong with it."""
    if len(body) > MAX_BODY_BYTES:
        raise InvalidEvent(f"the body is {len(body)} bytes; an event is at most {MAX_BODY_BYTES}")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidEvent(f"the body is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise InvalidEvent("the body should be a JSON object")
    if set(data) != FIELDS:
        missing, extra = sorted(FIELDS - set(data)), sorted(set(data) - FIELDS)
        raise InvalidEvent(f"an event has exactly the fields {sorted(FIELDS)}" + (f"; missing {missing}" if missing else "") + (f"; unknown {extra}" if extra else ""))
    if not isinstance(data["id"], str) or not EVENT_ID.match(data["id"]):
        raise InvalidEvent("id should be 32 lower-case hexadecimal digits (a UUID's hex)")
    exercise = catalogue.exercise(data["exercise"]) if isinstance(data["exercise"], str) else None
    if exercise is None:
        raise InvalidEvent(f"unknown exercise {data['exercise']!r}")
    if data["check"] not in exercise.checks:
        raise InvalidEvent(f"{data['check']!r} is not a check of {exercise.name}")
    if data["part"] != "all" and not (data["check"] == exercise.check and data["part"] in exercise.parts):
        raise InvalidEvent(f"unknown part {data['part']!r} of {data['check']}")
    if not isinstance(data["passed"], bool):
        raise InvalidEvent("passed should be true or false")
    duration = data["duration_s"]
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 <= duration <= MAX_DURATION_S:
        raise InvalidEvent(f"duration_s should be a number of seconds from 0 to {MAX_DURATION_S:g}")
    hint = data["hint"]
    if hint is not None and hint not in catalogue.hints:
        raise InvalidEvent(f"unknown mistake id {hint!r}")
    if hint is not None and data["passed"]:
        raise InvalidEvent("a passed check names no mistake")
    return Event(data["id"], exercise.name, data["check"], data["part"], data["passed"], float(duration), hint)


@dataclass
class RateLimit:
    """A token bucket per learner: `burst` events at once, then `per_second` (a Run All of the notebook runs
    about a dozen checks; a learner who sends more than that for minutes is not running checks)."""

    burst: float = 30
    per_second: float = 1.0
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def allow(self, learner: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, then = self.buckets.get(learner, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.per_second)
        if tokens < 1:
            self.buckets[learner] = (tokens, now)
            return False
        self.buckets[learner] = (tokens - 1, now)
        return True
