"""Catalogues of learner solutions, for testing the learner checks themselves.

`wrong.py` holds small, realistic mistakes: every one must be rejected by its exercise's check, and
where the mistake can be recognised, the message must name it (the entry's `hint` keyword).
`correct.py` holds different but correct ways of writing each exercise: every one must pass.

`outcome(entry, world)` runs an entry through its check and says what the check did; outcomes are
cached per (world, entry), so the per-entry tests and the summary table run each entry once.
"""

from __future__ import annotations

import contextlib
import functools
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

import solutions
import tests as checks
from part_utils.world_types import World
from tests import intermediate


@dataclass(frozen=True)
class Target:
    """What catalogue entries are written for: an exercise of the table (tests/exercises.py), or one of the
    spec's intermediate functions an exercise is built from, named after the function."""

    check: Callable[..., None]
    # The reference's name in `solutions`, which the checks look up when they run (None for SparseTensor:
    # its check compares with the expected arrays directly).
    reference: str | None
    marker: str  # the pytest marker: the exercise's name (an intermediate function's exercise)
    sae_map: str | None  # the world's SAE map the check takes ("saes", "attn_saes"; None: no world)
    intermediate: bool

    def run_check(self, fn: Any, world: World) -> None:
        if self.sae_map is None:
            self.check(fn)
        else:
            self.check(fn, world.model, getattr(world, self.sae_map))


EXERCISES: dict[str, Target] = {
    exercise.name: Target(
        exercise.check, None if exercise.settings is None else exercise.reference.__name__, exercise.name, exercise.sae_map, False
    )
    for exercise in checks.EXERCISES
} | {
    check.__name__.removeprefix("test_"): Target(check, check.__name__.removeprefix("test_"), exercise.name, exercise.sae_map, True)
    for exercise in checks.EXERCISES
    for check in exercise.intermediate_checks
}


def reference_name(exercise: str) -> str | None:
    return EXERCISES[exercise].reference


@dataclass(frozen=True)
class Entry:
    name: str
    exercise: str
    fn: Any  # the learner's function (a SparseTensor class for the sparse_tensor exercise)
    correct: bool
    hint: str | None  # wrong entries: a keyword the check's message must contain (None: not recognisable)
    description: str
    # The entry is about adding positional embeddings, which a world with rotary positions (the toy
    # world) does not have: there the mistake cannot be made, and the "correct" code cannot run.
    needs_positional_embeddings: bool = False

    def applies_to(self, world: World) -> bool:
        return not self.needs_positional_embeddings or world.model.cfg.positional_embedding_type == "standard"

    @property
    def marker(self) -> str:
        return EXERCISES[self.exercise].marker

    @property
    def id(self) -> str:
        return f"{self.exercise}-{self.name}"


ENTRIES: list[Entry] = []


def _register(
    correct: bool, exercise: str, hint: str | None, name: str | None, description: str, needs_positional_embeddings: bool
) -> Callable[[Any], Any]:
    if exercise not in EXERCISES:
        raise ValueError(f"unknown exercise {exercise!r}")

    def register(fn: Any) -> Any:
        entry = Entry(
            name or fn.__name__, exercise, fn, correct, hint, description or (fn.__doc__ or "").strip(), needs_positional_embeddings
        )
        if any(e.id == entry.id for e in ENTRIES):
            raise ValueError(f"two catalogue entries are called {entry.id}")
        ENTRIES.append(entry)
        return fn

    return register


def wrong_entry(exercise: str, hint: str | None, description: str = "", *, name: str | None = None, needs_positional_embeddings: bool = False):
    """Register a wrong learner solution; its check must fail with `hint` in the message."""
    return _register(False, exercise, hint, name, description, needs_positional_embeddings)


def correct_entry(exercise: str, description: str = "", *, name: str | None = None, needs_positional_embeddings: bool = False):
    """Register a correct learner solution; its check must pass."""
    return _register(True, exercise, None, name, description, needs_positional_embeddings)


@dataclass
class Outcome:
    accepted: bool
    message: str  # what the check printed (passed) or raised (failed)
    seconds: float
    # Correct gradient entries: max |learner - reference| / max |reference| over the Jacobian.
    relative_error: float | None = None

    @property
    def hint_given(self) -> bool:
        return "Hint:" in self.message


def _world_key(world: World) -> str:
    return f"{world.name}@{id(world.model)}"


_REFERENCE_CACHE: dict[tuple, Any] = {}


def _tensor_key(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return ("tensor", tuple(x.shape), tuple(x.flatten().tolist()) if x.numel() < 4096 else x.data_ptr())
    if isinstance(x, (int, float, str, type(None))):
        return x
    return ("object", id(x))


@contextlib.contextmanager
def _memoised_reference(name: str | None) -> Iterator[None]:
    """The reference solutions are deterministic: compute each (world, inputs) once for the whole catalogue.

    The checks look the reference up as `solutions.<name>` when they run, so swapping the attribute
    is enough (the intermediate checks' reference results, Jacobian included, go through
    `tests.intermediate.reference_results`, memoised likewise). The learner's function always runs for real.
    """
    if name is None:
        yield
        return
    if any(target.intermediate and target.reference == name for target in EXERCISES.values()):
        original_results = intermediate.reference_results

        def memoised_results(reference: Any, args: Any) -> Any:
            key = ("intermediate", name, *(_tensor_key(a) for a in args))
            if key not in _REFERENCE_CACHE:
                _REFERENCE_CACHE[key] = original_results(reference, args)
            return _REFERENCE_CACHE[key]

        intermediate.reference_results = memoised_results
        try:
            yield
        finally:
            intermediate.reference_results = original_results
        return
    original = getattr(solutions, name)

    @functools.wraps(original)
    def memoised(*args: Any) -> Any:
        key = (name, *(_tensor_key(a) for a in args))
        if key not in _REFERENCE_CACHE:
            _REFERENCE_CACHE[key] = original(*args)
        return _REFERENCE_CACHE[key]

    setattr(solutions, name, memoised)
    try:
        yield
    finally:
        setattr(solutions, name, original)


def run_check(exercise: str, fn: Any, world: World) -> None:
    """Run the exercise's learner check on `fn` in `world` (raises CheckFailed when it fails)."""
    EXERCISES[exercise].run_check(fn, world)


def _relative_error(got: Any, want: Any) -> float | None:
    """max |got - want| / max |want| of two Jacobians labelled alike (None when they are not comparable)."""
    if not (isinstance(got, tuple) and isinstance(want, tuple) and got and want):
        return None
    g, w = got[0], want[0]
    if not (isinstance(g, torch.Tensor) and isinstance(w, torch.Tensor)) or g.shape != w.shape:
        return None
    labels_equal = all(
        torch.equal(a.sparse[1], b.sparse[1]) for a, b in zip(got[1:], want[1:]) if hasattr(a, "sparse") and hasattr(b, "sparse")
    )
    if not labels_equal:
        return None
    scale = float(w.detach().double().abs().max()) if w.numel() else 0.0
    return float((g.detach().double() - w.detach().double()).abs().max()) / scale if scale else 0.0


_OUTCOMES: dict[tuple[str, str], Outcome] = {}


def outcome(entry: Entry, world: World) -> Outcome:
    """Run `entry` through its check in `world` once; later calls return the cached outcome."""
    key = (_world_key(world), entry.id)
    if key in _OUTCOMES:
        return _OUTCOMES[key]
    reference = reference_name(entry.exercise)
    returned: list[Any] = []
    fn = entry.fn
    if reference is not None:

        @functools.wraps(entry.fn)
        def fn(*args: Any) -> Any:
            result = entry.fn(*args)
            returned.append(result)
            return result

    printed = io.StringIO()
    start = time.perf_counter()
    with _memoised_reference(reference), contextlib.redirect_stdout(printed):
        try:
            run_check(entry.exercise, fn, world)
            accepted, message = True, printed.getvalue()
        except checks.CheckFailed as failure:
            accepted, message = False, printed.getvalue() + failure.render()
    seconds = time.perf_counter() - start
    relative_error = None
    if entry.correct and returned and reference is not None:
        references = [v for k, v in _REFERENCE_CACHE.items() if k[0] == reference]
        errors = [e for e in (_relative_error(returned[-1], want) for want in references) if e is not None]
        relative_error = min(errors) if errors else None
    result = Outcome(accepted, message, seconds, relative_error)
    _OUTCOMES[key] = result
    return result


def all_entries() -> list[Entry]:
    """Every entry of both catalogues (importing them registers their entries)."""
    from . import correct as _correct  # noqa: F401 (imported for its side effect: registering its entries)
    from . import wrong as _wrong  # noqa: F401 (imported for its side effect: registering its entries)

    return list(ENTRIES)
