"""The hidden tests' inputs, chosen at grading time from the instructor's secret and the student's id (runs in the grader).

The grader checks each graded part on a second world with other prompts, layers and k
(`grading.grader.verdict`). Those are not in the course's code, which learners receive: they are
derived from a secret only the instructor has (the environment variable GRADING_SECRET, else
`.grading_secret` in the course directory, which `make release` creates) and from the student's id,
so that no one can compute the hidden answers ahead of time and one student's leak helps no other.
A seeded generator draws the hidden world's seed and, per exercise, candidate settings; the first
candidate whose reference result is non-trivial (active latents on both sides, nonzero gradients) is
used, so that every hidden test can fail. No kernel receives them ahead of a call: the grader sends
each call's arguments when it makes it. docs/grading-security.md has the rest.
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
from pathlib import Path
from typing import Any

from grading.grader import settings

SECRET_FILE = ".grading_secret"
# Prompts the hidden tests draw from (any English text works on the random world's byte tokenizer).
PROMPTS = (
    "Big Ben stands in London, by the river.",
    "The museum is closed on Mondays",
    "The Colosseum is in the city of",
    "A quick brown fox jumps over the lazy dog.",
    "She poured the tea and sat down by the window",
    "The train to Berlin leaves at nine in the morning",
    "Water boils at one hundred degrees Celsius",
    "He wrote the letter, sealed it and sent it to Paris",
)
MAX_TRIES = 50


def read_secret(course: Path, create: bool = False) -> str:
    """The instructor's secret; with `create`, a new random one is written to the course when there is none."""
    if os.environ.get(settings.SECRET_ENV):
        return os.environ[settings.SECRET_ENV]
    path = course / SECRET_FILE
    if not path.exists():
        if not create:
            raise RuntimeError(f"No grading secret: set {settings.SECRET_ENV} or create {path} (`make release` does).")
        path.write_text(secrets.token_hex(32) + "\n", encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


def candidates(secret: str, student: str = "") -> tuple[int, list[dict[str, dict[str, Any]]]]:
    """(world seed, candidate settings per exercise in the order they are tried) for one student.

    Each exercise's candidates are drawn by its row of the exercise table (`tests.exercises`)."""
    from part_utils.random_world import HIDDEN_SHAPE
    from tests.exercises import EXERCISES

    rng = random.Random(hashlib.sha256(f"{secret}\0{student}".encode()).digest())
    world_seed = rng.randrange(2**31)
    tries = [{exercise.name: exercise.draw_hidden(rng, PROMPTS, HIDDEN_SHAPE.n_layers) for exercise in EXERCISES} for _ in range(MAX_TRIES)]
    return world_seed, tries


def hidden_world(seed: int) -> Any:
    """The hidden world of one seed (`part_utils.random_world.hidden_world`, which the kernel builds too)."""
    from part_utils.random_world import hidden_world as build

    return build(seed)


def reference_sizes(world: Any, exercise: str, chosen: dict[str, Any]) -> dict[str, Any] | None:
    """How big the reference's result of one hidden test is (its table row's `result_size`), as its check computes it.

    The check is run with the reference in the learner's place, recording what it returns: the same
    tokens, layers and k the hidden test will use, whatever the exercise."""
    import contextlib
    import io

    import solutions
    from tests.exercises import BY_NAME

    row = BY_NAME[exercise]
    if row.result_size is None:
        return None
    returned: list[Any] = []

    def recorded(*args: Any, **kwargs: Any) -> Any:
        # Looked up on the module: while a notebook is graded, each input's reference is computed once
        # (grading.grader.verdict.references_once), and the check itself computes this one too.
        reference = row.reference if kwargs else getattr(solutions, row.reference.__name__, row.reference)
        returned.append(reference(*args, **kwargs))
        return returned[-1]

    with contextlib.redirect_stdout(io.StringIO()):
        row.run_check(recorded, world, **chosen)
    return row.result_size(returned[-1])


def non_trivial(sizes: dict[str, Any] | None) -> bool:
    """Active latents (or logits, or tokens) on both sides of the Jacobian, and a gradient that is not all zero
    (None: an exercise whose every draw can fail)."""
    return sizes is None or (all(n > 0 for n in sizes["shape"]) and sizes["gradient"] > 0)


def choose(secret: str, student: str = "") -> dict[str, Any]:
    """The hidden tests' inputs for this secret and student: per exercise, the first candidate that can fail."""
    world_seed, tries = candidates(secret, student)
    world = hidden_world(world_seed)
    chosen: dict[str, Any] = {"world_seed": world_seed}
    for exercise in tries[0]:
        for candidate in tries:
            if non_trivial(reference_sizes(world, exercise, candidate[exercise])):
                chosen[exercise] = candidate[exercise]
                break
        else:
            raise RuntimeError(f"no non-trivial hidden test for {exercise} in {MAX_TRIES} tries: choose another secret")
    return chosen


def params_for(course: Path, student: str) -> dict[str, Any]:
    """`choose` for this course's secret and this student."""
    return choose(read_secret(course), student)
