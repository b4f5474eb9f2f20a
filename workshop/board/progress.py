"""The board's state, folded from the events in the order they arrived.

A learner's cell of an exercise is
- "not started": no check of it has run;
- "failing": the latest run of one of its checks failed; `mistake` is the hint id it named (None: a failure
  the checks have no name for), `since` when the learner's current run of failures began;
- "working": the latest run passed, but the exercise's own check has not passed yet (an intermediate check,
  or one graded part);
- "passed": the exercise's own check, whole, passed last; `since` when.
Learners are sorted so that whoever has been failing longest comes first, then the rest by name.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from workshop.board.events import Catalogue
from workshop.board.store import StoredEvent

NOT_STARTED, FAILING, WORKING, PASSED = "not started", "failing", "working", "passed"


@dataclass
class Cell:
    status: str = NOT_STARTED
    mistake: str | None = None
    since: float | None = None
    runs: int = 0
    last: float | None = None


class Progress:
    def __init__(self, catalogue: Catalogue, learners: list[str]) -> None:
        self.catalogue = catalogue
        self.learners = list(learners)
        self.cells: dict[tuple[str, str], Cell] = {}
        # Bumped by every new event: the live stream sends the state again when it moves.
        self.version = 0

    def add(self, stored: StoredEvent) -> None:
        event, when = stored.event, stored.received
        if stored.learner not in self.learners:
            self.learners.append(stored.learner)
        cell = self.cells.setdefault((stored.learner, event.exercise), Cell())
        cell.runs, cell.last = cell.runs + 1, when
        decides = event.check == self.catalogue.exercise(event.exercise).check and event.part == "all"
        if not event.passed:
            if cell.status != FAILING:
                cell.since = when
            cell.status, cell.mistake = FAILING, event.hint
        elif decides:
            cell.status, cell.mistake, cell.since = PASSED, None, when
        elif cell.status != PASSED:
            cell.status, cell.mistake, cell.since = WORKING, None, when
        self.version += 1

    def cell(self, learner: str, exercise: str) -> Cell:
        return self.cells.get((learner, exercise), Cell())

    def stuck_since(self, learner: str) -> float | None:
        """When the oldest of the learner's current failures began."""
        times = [c.since for (name, _), c in self.cells.items() if name == learner and c.status == FAILING and c.since is not None]
        return min(times) if times else None

    def sorted_learners(self) -> list[str]:
        def key(learner: str) -> tuple[int, float, str]:
            since = self.stuck_since(learner)
            return (0, since, learner) if since is not None else (1, 0.0, learner)

        return sorted(self.learners, key=key)

    def class_panel(self, exercise: str) -> dict[str, Any]:
        """How many passed the exercise, and the mistakes its failing learners are on, most frequent first."""
        cells = [self.cell(learner, exercise) for learner in self.learners]
        mistakes = Counter(c.mistake or "" for c in cells if c.status == FAILING)
        return {
            "passed": sum(c.status == PASSED for c in cells),
            "failing": sum(c.status == FAILING for c in cells),
            "learners": len(cells),
            "mistakes": [{"id": hint or None, "label": self.catalogue.hints.get(hint, "no named mistake") if hint else "no named mistake", "learners": n} for hint, n in mistakes.most_common()],
        }

    def state(self, now: float) -> dict[str, Any]:
        """Everything the board's page shows, as JSON."""
        return {
            "now": now,
            "version": self.version,
            "exercises": [{"name": e.name, "title": e.title} for e in self.catalogue.exercises],
            "panel": {e.name: self.class_panel(e.name) for e in self.catalogue.exercises},
            "learners": [
                {
                    "name": learner,
                    "stuck_since": self.stuck_since(learner),
                    "cells": {e.name: self._cell_json(self.cell(learner, e.name)) for e in self.catalogue.exercises},
                }
                for learner in self.sorted_learners()
            ],
        }

    def _cell_json(self, cell: Cell) -> dict[str, Any]:
        label = self.catalogue.hints.get(cell.mistake) if cell.mistake else None
        return {"status": cell.status, "mistake": cell.mistake, "label": label, "since": cell.since, "runs": cell.runs}

    def grid_csv(self) -> str:
        """The grid as CSV: one row per learner and exercise (times in UTC, ISO 8601)."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["learner", "exercise", "status", "mistake", "since_utc", "runs"])
        for learner in self.sorted_learners():
            for exercise in self.catalogue.exercises:
                c = self.cell(learner, exercise.name)
                writer.writerow([learner, exercise.name, c.status, c.mistake or "", _iso(c.since), c.runs])
        return out.getvalue()


def events_csv(events: list[StoredEvent]) -> str:
    """Every event as CSV, in the order they arrived."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["received_utc", "learner", "exercise", "check", "part", "passed", "duration_s", "mistake", "event_id"])
    for s in events:
        e = s.event
        writer.writerow([_iso(s.received), s.learner, e.exercise, e.check, e.part, int(e.passed), f"{e.duration_s:.3f}", e.hint or "", e.id])
    return out.getvalue()


def _iso(when: float | None) -> str:
    return "" if when is None else datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="seconds")
