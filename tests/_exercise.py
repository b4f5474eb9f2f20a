"""What every gradient check does: run the reference and the learner's function on the same world,
with the model's state preserved, and hand both results to the exercise's comparison."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor

from part_utils.gpt2_world import GPT2_EXERCISES, is_gpt2_small
from part_utils.world_types import ExerciseSettings, settings_of
from part_utils.worlds import note_unseen_tokens
from tests._report import CheckFailed, call_learner, fmt_seconds, passed, shape_of
from tests._state import HINT_LEAVE_NO_TRACE, preserved_state

# The parts of a gradient exercise's result that can be checked on their own (None: all of it).
PARTS = (None, "gradients", "activations")


def world_settings(model: HookedSAETransformer) -> ExerciseSettings:
    """The layers and prompts of the world `model` belongs to: those its World attached to it, or GPT-2's for
    GPT-2 small loaded by hand."""
    settings = settings_of(model)
    if settings is not None:
        return settings
    if is_gpt2_small(model):
        return GPT2_EXERCISES
    raise LookupError(
        "This model was not loaded with part_utils.load_world(), so the checks do not know which layers and "
        "prompts to use. Load your model with `world = load_world(...)` and pass `world.model`."
    )


def exercise_settings(model: HookedSAETransformer, exercise: str, **overrides: Any) -> Any:
    """One exercise's settings in the world of `model`, with each override that is not None in their place
    (a check's keyword arguments: the hidden tests' other prompts, layers and k)."""
    settings = getattr(world_settings(model), exercise)
    if overrides.get("prompt") is not None:
        note_unseen_tokens(model.to_str_tokens(overrides["prompt"]))
    return dataclasses.replace(settings, **{name: value for name, value in overrides.items() if value is not None})


def one_layer_inputs(model: HookedSAETransformer, saes: Mapping[int, SAE], exercise: str, **overrides: Any) -> tuple[Any, SAE, Tensor]:
    """A one-layer exercise's settings (with `overrides`), the SAE at its layer and its prompt's tokens."""
    settings = exercise_settings(model, exercise, **overrides)
    return settings, saes[settings.layer], model.to_tokens(settings.prompt)


def layer_pair_inputs(model: HookedSAETransformer, saes: Mapping[int, SAE], exercise: str, **overrides: Any) -> tuple[Any, SAE, SAE]:
    """A two-layer exercise's settings (with `overrides`) and the SAEs at its earlier and later layer."""
    settings = exercise_settings(model, exercise, **overrides)
    return settings, saes[settings.layer_from], saes[settings.layer_to]


def run_check(
    exercise: str,
    fn: Callable[..., Any],
    reference: Callable[..., Any],
    args: Sequence[Any],
    model: HookedSAETransformer,
    saes: Sequence[SAE],
    n_outputs: int,
    compare: Callable[[Any, Any], str],
    part: str | None = None,
    exception_hint: Callable[[BaseException], str | None] | None = None,
    part_label: str | None = None,
) -> None:
    """Call `reference(*args)` and `fn(*args)`, then `compare(got, want)`; it returns a summary or raises.

    `part` checks one part of the result, for graders that give points separately: "gradients" (the
    first output, compared against the reference's activations) or "activations" (every other output).

    `part_label` names the part in the summary, for a check whose parts have names of their own.

    `exception_hint(error)` may name the likely mistake behind an exception the learner's function raised.

    State the learner's function leaves behind (hooks, attached SAEs, use_error_term, grad mode) is
    undone and reported: as the reason the check fails if the results were right, else alongside
    what was wrong (it may be why).
    """
    if part not in PARTS:
        raise ValueError(f"part should be one of {PARTS}, not {part!r}")
    if not callable(fn):
        raise CheckFailed(exercise, f"the first argument should be your function, but it is a {shape_of(fn)}.")
    start = time.perf_counter()
    # enable_grad outside preserved_state: a learner who switches gradients off is seen, not masked.
    with torch.enable_grad(), preserved_state(model, saes):
        want = reference(*args)
    raised: CheckFailed | None = None
    with torch.enable_grad(), preserved_state(model, saes) as changes:
        try:
            got = call_learner(exercise, fn, *args)
        except CheckFailed as failure:
            raised = failure
    if raised is not None:
        hint = raised.hint
        if hint is None and raised.learner_error is not None and exception_hint is not None:
            hint = exception_hint(raised.learner_error)
        raise _also_changed(CheckFailed(exercise, raised.message, hint), changes) from None
    if not isinstance(got, tuple) or len(got) != n_outputs:
        length = f"a tuple of {len(got)}" if isinstance(got, tuple) else f"a {shape_of(got)}"
        raise _also_changed(
            CheckFailed(exercise, f"your function should return a tuple of {n_outputs} items, but it returned {length}."), changes
        )
    if part == "gradients":
        got = (got[0], *want[1:])
    elif part == "activations":
        got = (want[0], *got[1:])
    try:
        summary = compare(got, want)
    except CheckFailed as failure:
        raise _also_changed(failure, changes) from None
    if part is not None:
        summary = f"{part_label or part} only: {summary}"

    if changes:
        raise left_a_trace(exercise, changes)
    passed(exercise, f"{summary} ({fmt_seconds(time.perf_counter() - start)} for your function and the reference)")


def left_a_trace(exercise: str, changes: list[str]) -> CheckFailed:
    """The failure of a function whose results are right but which left the model or SAEs changed."""
    return CheckFailed(
        exercise,
        "your results are right, but your function changed the model or SAEs and did not put them back. It "
        + "; it ".join(changes)
        + ". The check has undone this; fix the function so it leaves no trace.",
        HINT_LEAVE_NO_TRACE,
    )


def _also_changed(failure: CheckFailed, changes: list[str]) -> CheckFailed:
    """`failure`, with what the learner's function left changed in the model or SAEs added to its message."""
    if not changes:
        return failure
    message = (
        failure.message
        + "\n\nYour function also changed the model or SAEs and did not put them back (this may be why): it "
        + "; it ".join(changes)
        + ". The check has undone this."
    )
    return CheckFailed(failure.exercise, message, failure.hint or HINT_LEAVE_NO_TRACE)
