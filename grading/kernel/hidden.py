"""The hidden tests of the graded cells: the same checks, on a second world and other prompts and layers.

Their inputs are not in this code: the grader chooses them from the instructor's secret
(`grading.grader.hidden_params`) and hands them over in GRADING_HIDDEN_PARAMS, which this module reads
when the kernel starts and removes from its environment. In each graded cell's hidden region,
`check(exercise, part, fn)` gives no credit when the world, the checks or the libraries' classes were
changed since the kernel started, or when the function is or calls a reference solution; then it runs
the same part of the same check on a seeded random world, where an output hard-coded from the visible
check cannot match. A failure raises `HiddenTestFailed` or `IntegrityViolation`, shown as one message,
so the feedback says why without the hidden test's code or inputs.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
from collections.abc import Callable
from typing import Any

import torch

import tests
from grading.grader.hidden_params import PARAMS_ENV
from grading.kernel import guard

# Read once, when the kernel starts (grading/kernel/setup.py imports this module before any cell runs), and taken
# out of the environment: a submission can then neither read the hidden inputs nor put its own in their place.
_PARAMS = os.environ.pop(PARAMS_ENV, None)


def params() -> dict[str, Any]:
    try:
        return json.loads(_PARAMS)
    except (TypeError, ValueError):
        raise RuntimeError(f"the hidden tests run only in the grader (no {PARAMS_ENV} when this kernel started)") from None


class _OneMessage(AssertionError):
    def __init__(self, text: str):
        self.text = text
        super().__init__(text)

    def _render_traceback_(self) -> list[str]:
        return [self.text]


class HiddenTestFailed(_OneMessage):
    """The visible check passed (or was not reached), but the same check on the hidden inputs failed."""


class IntegrityViolation(_OneMessage):
    """The exercise gets no credit: its code patched the checks or used the reference solutions."""


@functools.lru_cache(maxsize=1)
def hidden_world() -> Any:
    from part_utils.random_world import TINY_SHAPE, build_random_world

    with contextlib.redirect_stdout(io.StringIO()):
        return build_random_world(TINY_SHAPE, seed=params()["world_seed"], device=_device())


def _device() -> torch.device:
    from part_utils.device import get_device

    return get_device()


def tampering(exercise: str) -> str | None:
    """Why `exercise` gets no credit if the checks, the libraries' classes or the world were changed since the kernel started; else None."""
    patched = guard.changed()
    if patched:
        return f"✗ integrity ({exercise}): no credit: the checks were modified while the notebook ran ({', '.join(patched[:5])})."
    changed = guard.world_changed()
    if changed:
        return f"✗ integrity ({exercise}): no credit: the world's parameters were changed while the notebook ran ({', '.join(changed[:3])})."
    return None


def _integrity(exercise: str, fn: Any) -> None:
    message = tampering(exercise)
    if message:
        raise IntegrityViolation(message)
    if guard.defined_in_solutions(fn):
        raise IntegrityViolation(f"✗ integrity ({exercise}): no credit: the function checked is the reference solution's.")


def _traced(fn: Callable[..., Any], calls: list[str]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def traced(*args: Any, **kwargs: Any) -> Any:
        with guard.tripwire() as hits:
            try:
                return fn(*args, **kwargs)
            finally:
                calls.extend(hits)

    return traced


class _TracedSparseTensor:
    """The student's SparseTensor class, with its two constructors traced."""

    def __init__(self, cls: Any, calls: list[str]):
        self.from_dense = _traced(cls.from_dense, calls)
        self.from_sparse = _traced(cls.from_sparse, calls)


def _sparse_cases() -> list[tuple[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(params()["sparse_seed"])

    def sparse_random(shape: tuple[int, ...], density: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        values = torch.rand(shape, generator=generator) + 0.05
        keep = torch.rand(shape, generator=generator) < density
        signs = torch.where(torch.rand(shape, generator=generator) < 0.1, -1.0, 1.0)
        return torch.where(keep, values * signs, torch.zeros(())).to(dtype=dtype, device=_device())

    single = torch.zeros(1, 1, 9, device=_device())
    single[0, 0, 4] = 0.7
    return [
        ("a 1-D tensor", sparse_random((257,), 0.05)),
        ("a (batch, seq, d_sae) tensor", sparse_random((3, 11, 37), 0.15)),
        ("a float64 4-D tensor", sparse_random((2, 2, 3, 5), 0.4, torch.float64)),
        ("a single active entry", single),
        ("no active entry", torch.zeros(2, 3, device=_device())),
    ]


def _check_sparse_tensor(SparseTensor: Any, part: str) -> None:
    from tests._report import CheckFailed, compare_tensor

    name = "test_sparse_tensor"
    for label, dense in _sparse_cases():
        active = dense > 0
        values, indices, shape = dense[active], active.nonzero(), tuple(dense.shape)
        if part == "from_dense":
            result = SparseTensor.from_dense(dense)
            sparse = getattr(result, "sparse", None)
            if not (isinstance(sparse, tuple) and len(sparse) == 3):
                raise CheckFailed(name, f"from_dense on {label}: `.sparse` is not a (values, indices, shape) tuple.")
            compare_tensor(name, f"from_dense on {label}: indices", sparse[1], indices)
            compare_tensor(name, f"from_dense on {label}: values", sparse[0], values)
            if sparse[0].dtype != dense.dtype or tuple(sparse[2]) != shape:
                raise CheckFailed(name, f"from_dense on {label}: the values' dtype or the shape is wrong.")
            compare_tensor(name, f"from_dense on {label}: .dense", result.dense, dense)
        else:
            result = SparseTensor.from_sparse((values, indices, shape))
            expected = torch.where(active, dense, torch.zeros((), dtype=dense.dtype, device=dense.device))
            got = getattr(result, "dense", None)
            if isinstance(got, torch.Tensor) and got.dtype != expected.dtype:
                raise CheckFailed(name, f"from_sparse on {label}: .dense has dtype {got.dtype}, expected {expected.dtype}.")
            compare_tensor(name, f"from_sparse on {label}: .dense", got, expected)


def _run_hidden(exercise: str, part: str, fn: Any, calls: list[str]) -> None:
    if exercise == "sparse_tensor":
        tests._report.call_learner("test_sparse_tensor", _check_sparse_tensor, _TracedSparseTensor(fn, calls), part)
        return
    tests.BY_NAME[exercise].run_check(_traced(fn, calls), hidden_world(), part=part, **params()[exercise])


def check(exercise: str, part: str, fn: Any) -> None:
    """The hidden test of one graded cell: integrity, then `part` of the exercise's check on hidden inputs."""
    _integrity(exercise, fn)
    calls: list[str] = []
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output):
            _run_hidden(exercise, part, fn, calls)
    except tests.CheckFailed as error:
        if calls:
            raise IntegrityViolation(f"✗ integrity ({exercise}): no credit: your code called the reference solutions ({calls[0]}).") from None
        raise HiddenTestFailed(
            f"✗ hidden test ({exercise}, {part}): the same check on a second world and prompt failed:\n{error.message}"
        ) from None
    if calls:
        raise IntegrityViolation(f"✗ integrity ({exercise}): no credit: your code called the reference solutions ({calls[0]}).")
    print(f"✓ hidden test ({exercise}, {part}) passed on a second world and prompt")
