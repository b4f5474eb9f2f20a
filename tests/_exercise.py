"""What every gradient check does: run the reference and the learner's function on the same world,
with the model's state preserved, and hand both results to the exercise's comparison."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from sae_lens import SAE, HookedSAETransformer

from tests._report import CheckFailed, call_learner, fmt_seconds, passed, shape_of
from tests._state import preserved_state


def run_check(
    exercise: str,
    fn: Callable[..., Any],
    reference: Callable[..., Any],
    args: Sequence[Any],
    model: HookedSAETransformer,
    saes: Sequence[SAE],
    n_outputs: int,
    compare: Callable[[Any, Any], str],
) -> None:
    """Call `reference(*args)` and `fn(*args)`, then `compare(got, want)`; it returns a summary or raises.

    State the learner's function leaves behind (hooks, attached SAEs, use_error_term, grad mode) is
    undone and, if the results were right, reported as the reason the check fails.
    """
    if not callable(fn):
        raise CheckFailed(exercise, f"the first argument should be your function, but it is a {shape_of(fn)}.")
    start = time.perf_counter()
    with preserved_state(model, saes), torch.enable_grad():
        want = reference(*args)
    with preserved_state(model, saes) as changes, torch.enable_grad():
        got = call_learner(exercise, fn, *args)
    if not isinstance(got, tuple) or len(got) != n_outputs:
        length = f"a tuple of {len(got)}" if isinstance(got, tuple) else f"a {shape_of(got)}"
        raise CheckFailed(exercise, f"your function should return a tuple of {n_outputs} items, but it returned {length}.")
    summary = compare(got, want)
    if changes:
        raise CheckFailed(
            exercise,
            "your results are right, but your function changed the model or SAEs and did not put them back. It "
            + "; it ".join(changes)
            + ". The check has undone this; fix the function so it leaves no trace.",
        )
    passed(exercise, f"{summary} ({fmt_seconds(time.perf_counter() - start)} for your function and the reference)")
