"""How the learner checks talk: one failure message that says what to fix, not a traceback wall."""

from __future__ import annotations

import sys
import textwrap
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

HINT_BROKEN_GRAPH = (
    "Your values are right, but the Jacobian taken through your function is not: something cuts or bends "
    "the gradient between the input values and the output. Look for .detach(), torch.no_grad(), .item() or "
    ".tolist() turned back into a tensor, torch.tensor(...) built from other tensors, or an input you do not use."
)


class CheckFailed(AssertionError):
    """A learner check failed. In Jupyter it shows as its message alone, without the check's own frames."""

    def __init__(self, exercise: str, message: str, hint: str | None = None):
        self.exercise = exercise
        self.message = message
        self.hint = hint
        # The exception the learner's function raised, when that is why the check failed (see call_learner).
        self.learner_error: BaseException | None = None
        super().__init__(self.render())

    def render(self) -> str:
        text = f"✗ {self.exercise}: {self.message}"
        if self.hint:
            text += "\n\nHint: " + textwrap.fill(self.hint, width=100, subsequent_indent="      ")
        return text

    def _render_traceback_(self) -> list[str]:
        # IPython calls this instead of printing a traceback: the learner sees only what to fix.
        return [self.render()]


def shape_of(x: Any) -> str:
    if isinstance(x, Tensor):
        return str(tuple(x.shape))
    return type(x).__name__


def tolerances(device: torch.device) -> tuple[float, float]:
    """(rtol, atol relative to the largest reference magnitude) for comparing float32 results.

    On the CPU and CUDA, 1e-3: 10x the largest float32 rounding between correct formulations (the
    correct catalogue's table in project_tests/test_catalogue.py and `make device-check` measure it),
    and 10x below the smallest mistake the checks must catch (a Jacobian 1% off,
    project_tests/test_check_state.py). The checks run in full float32 whatever the learner set
    (tests/_state.py), so TF32 does not widen it. MPS uses fast math and is unmeasured: 3e-3, still 3x
    below a 1% error. docs/development.md gives the reasoning.
    """
    if device.type in ("cpu", "cuda"):
        return 1e-3, 1e-3
    return 3e-3, 3e-3


def compare_tensor(exercise: str, name: str, got: Any, want: Tensor, hint: str | None = None) -> None:
    """Fail with the shapes, or the largest difference and where it is, unless `got` ≈ `want`."""
    if not isinstance(got, Tensor):
        raise CheckFailed(exercise, f"{name} should be a torch.Tensor of shape {shape_of(want)}, but it is a {shape_of(got)}.", hint)
    if got.shape != want.shape:
        raise CheckFailed(exercise, f"{name} has shape {shape_of(got)}, but the reference's is {shape_of(want)}.", hint)
    if got.device != want.device:
        raise CheckFailed(exercise, f"{name} is on {got.device}, but the model is on {want.device}.", hint)
    if not got.is_floating_point() or not want.is_floating_point():
        if not torch.equal(got.to(want.dtype), want):
            raise CheckFailed(exercise, f"{name} differs from the reference in {int((got.to(want.dtype) != want).sum())} places.", hint)
        return
    rtol, atol_relative = tolerances(want.device)
    got64, want64 = got.detach().double(), want.detach().double()
    scale = float(want64.abs().max()) if want64.numel() else 0.0
    atol = atol_relative * max(scale, 1e-6)
    if not torch.isfinite(got64).all():
        raise CheckFailed(exercise, f"{name} contains NaN or infinite values.", hint)
    error = (got64 - want64).abs()
    allowed = atol + rtol * want64.abs()
    if error.numel() and bool((error > allowed).any()):
        worst = int((error - allowed).argmax())
        where = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), want.shape)) if want.ndim else ()
        n_bad = int((error > allowed).sum())
        raise CheckFailed(
            exercise,
            f"{name} (shape {shape_of(want)}) differs from the reference in {n_bad} of {want.numel()} entries. "
            f"Largest difference {float(error.flatten()[worst]):.3g} at index {where}: "
            f"yours {float(got64.flatten()[worst]):.6g}, reference {float(want64.flatten()[worst]):.6g} "
            f"(tolerance {atol:.2g} + {rtol:g}·|reference|).",
            hint,
        )


def close_enough(got: Any, want: Tensor) -> bool:
    """Whether `got` would pass `compare_tensor` against `want` (for recognising known mistakes)."""
    try:
        compare_tensor("", "", got, want)
    except CheckFailed:
        return False
    return True


def learner_frames(error: BaseException) -> str:
    """The part of a traceback that is the learner's own code (notebook cells), or all of it."""
    frames = traceback.extract_tb(error.__traceback__)
    own = [frame for frame in frames if "/tests/" not in frame.filename.replace("\\", "/")]
    lines = traceback.format_list(own[-3:]) if own else []
    return "".join(lines) + "".join(traceback.format_exception_only(type(error), error))


@contextmanager
def learner_warnings(exercise: str) -> Iterator[None]:
    """Catch warnings the learner's code raises and show them on stdout.

    nbgrader scores a cell 0 when it writes anything to stderr, and Python prints warnings there.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in {(str(w.message), w.category.__name__): w for w in caught}.values():
        note = f"note ({exercise}): your code raised a {warning.category.__name__}: {warning.message}"
        if "use_error_term" in str(warning.message):
            note += "\n  (Instead of setting sae.use_error_term, pass use_error_term=True to run_with_cache_with_saes.)"
        print(note, file=sys.stdout)


def call_learner(exercise: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run the learner's function; turn any exception into a CheckFailed that shows their own frames."""
    try:
        with learner_warnings(exercise):
            return fn(*args, **kwargs)
    except NotImplementedError:
        raise CheckFailed(
            exercise,
            f"`{getattr(fn, '__qualname__', fn)}` still raises NotImplementedError: fill in its body, then run this cell again.",
        ) from None
    except CheckFailed:
        raise
    except Exception as error:  # noqa: BLE001 (the learner's bug, whatever it is, is reported rather than re-raised)
        failure = CheckFailed(
            exercise,
            f"calling your function raised {type(error).__name__}:\n{textwrap.indent(learner_frames(error), '    ')}",
            _hint_for_exception(error),
        )
        failure.learner_error = error  # for checks that can tell what a given exception means in their exercise
        raise failure from None


def _hint_for_exception(error: Exception) -> str | None:
    text = str(error)
    if isinstance(error, torch.cuda.OutOfMemoryError) or any(
        words in text.lower() for words in ("out of memory", "can't allocate memory", "cannot allocate memory")
    ):
        return (
            "Out of memory. jacrev runs one backward pass per output and builds an outputs x outputs basis, so its "
            "memory grows with the number of OUTPUTS. If the error asked for tens of GB or more, the function you "
            "differentiate probably returns a dense tensor (every latent at every position): return the active "
            "values (`SparseTensor.from_dense(...).sparse[0]`) and keep the dense tensor in the aux tuple; pass "
            "`*latent_acts.sparse` in. If it asked for little, print(memory_report()) and free_memory() help."
        )
    if "vmap" in text or "functorch" in text or "data-dependent" in text:
        return (
            "Inside torch.func.jacrev, avoid .item(), .tolist(), .numpy() and in-place ops on the inputs; "
            "build new tensors instead."
        )
    return None


def passed(exercise: str, details: str) -> None:
    print(f"✓ {exercise} passed: {details}")


def fmt_seconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"
