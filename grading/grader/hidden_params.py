"""The hidden tests' inputs, chosen at grading time from the instructor's secret (runs in the grader).

The hidden tests run each exercise on a second world with other prompts, layers and k. Those are not in
the course's code, which learners receive: they are derived from a secret only the instructor has, first
found in the environment variable GRADING_SECRET, else in `.grading_secret` in the course directory
(git-ignored; `make release` creates it). From the secret, a seeded generator draws the hidden world's
seed and, per exercise, candidate settings; the first candidate whose reference result is non-trivial
(active latents on both sides, nonzero gradients) is used, so that every hidden test can fail. The
choice is cached per secret in reports/ and handed to each grading kernel in GRADING_HIDDEN_PARAMS; the
secret itself never reaches a kernel (`settings.kernel_env`). docs/grading-security.md has the rest.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import secrets
from pathlib import Path
from typing import Any

from grading.grader import settings

SECRET_FILE = ".grading_secret"
PARAMS_ENV = "GRADING_HIDDEN_PARAMS"
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
N_LAYERS = 4  # the hidden world is a TINY_SHAPE random world: SAEs on each of its 4 layers
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


def candidates(secret: str) -> tuple[int, int, list[dict[str, dict[str, Any]]]]:
    """(world seed, sparse-tensor seed, candidate settings per exercise in the order they are tried).

    Each exercise's candidates are drawn by its row of the exercise table (`tests.exercises`)."""
    from tests.exercises import EXERCISES

    rng = random.Random(hashlib.sha256(secret.encode()).digest())
    world_seed, sparse_seed = rng.randrange(2**31), rng.randrange(2**31)
    drawn = [exercise for exercise in EXERCISES if exercise.draw_hidden is not None]
    tries = [{exercise.name: exercise.draw_hidden(rng, PROMPTS, N_LAYERS) for exercise in drawn} for _ in range(MAX_TRIES)]
    return world_seed, sparse_seed, tries


def hidden_world(seed: int) -> Any:
    from part_utils.random_world import TINY_SHAPE, build_random_world

    return build_random_world(TINY_SHAPE, seed=seed, device="cpu")


def reference_sizes(world: Any, exercise: str, chosen: dict[str, Any]) -> dict[str, Any]:
    """How big the reference's result of one hidden test is (its table row's `result_size`), as its check computes it.

    The check is run with the reference in the learner's place, recording what it returns: the same
    tokens, layers and k the hidden test will use, whatever the exercise."""
    import contextlib
    import io

    from tests.exercises import BY_NAME

    row = BY_NAME[exercise]
    returned: list[Any] = []

    def recorded(*args: Any, **kwargs: Any) -> Any:
        returned.append(row.reference(*args, **kwargs))
        return returned[-1]

    with contextlib.redirect_stdout(io.StringIO()):
        row.run_check(recorded, world, **chosen)
    return row.result_size(returned[-1])


def non_trivial(sizes: dict[str, Any]) -> bool:
    """Active latents (or logits, or tokens) on both sides of the Jacobian, and a gradient that is not all zero."""
    return all(n > 0 for n in sizes["shape"]) and sizes["gradient"] > 0


def choose(secret: str) -> dict[str, Any]:
    """The hidden tests' inputs for this secret: per exercise, the first candidate that can fail."""
    world_seed, sparse_seed, tries = candidates(secret)
    world = hidden_world(world_seed)
    chosen: dict[str, Any] = {"world_seed": world_seed, "sparse_seed": sparse_seed, "reference_sizes": {}}
    for exercise in tries[0]:
        for candidate in tries:
            sizes = reference_sizes(world, exercise, candidate[exercise])
            if non_trivial(sizes):
                chosen[exercise], chosen["reference_sizes"][exercise] = candidate[exercise], sizes
                break
        else:
            raise RuntimeError(f"no non-trivial hidden test for {exercise} in {MAX_TRIES} tries: choose another secret")
    return chosen


def params_for(course: Path) -> dict[str, Any]:
    """`choose(secret)`, cached in reports/ under the secret's hash.

    Parallel graders take a lock on the cache first: the first computes it (a few seconds: the hidden
    world and every candidate's reference run), the others wait and read it."""
    secret = read_secret(course)
    cache = course / "reports" / f"hidden-params-{hashlib.sha256(secret.encode()).hexdigest()[:16]}.json"
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if cache.exists():
            return json.loads(cache.read_text(encoding="utf-8"))
        chosen = choose(secret)
        partial = cache.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(chosen, indent=1), encoding="utf-8")
        partial.replace(cache)
        return chosen
