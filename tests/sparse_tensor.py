"""Learner check for exercise 1: `SparseTensor.from_dense` and `SparseTensor.from_sparse`."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from tests._report import CheckFailed, call_learner, compare_tensor, fmt_seconds, learner_warnings, passed, shape_of

EXERCISE = "test_sparse_tensor"


def _cases(device: torch.device, seed: int | None = None) -> list[tuple[str, Tensor]]:
    """Dense tensors to round-trip: the shapes and corner cases the course meets; with a `seed`, others drawn
    from it (a grader's hidden test)."""
    if seed is not None:
        return _drawn_cases(device, seed)
    generator = torch.Generator().manual_seed(0)

    def sparse_random(shape: tuple[int, ...], density: float, dtype: torch.dtype = torch.float32) -> Tensor:
        values = torch.rand(shape, generator=generator) + 0.1
        keep = torch.rand(shape, generator=generator) < density
        return torch.where(keep, values, torch.zeros(())).to(dtype=dtype, device=device)

    single = torch.zeros(1, 5, 32, device=device)
    single[0, 3, 17] = 2.5
    with_negatives = sparse_random((2, 6, 40), 0.2)
    with_negatives[0, 0, :5] = -1.0  # pre-activations are not positive: they are not active latents
    return [
        ("a 1-D tensor of 10,000 entries with 10 nonzero", sparse_random((10_000,), 10 / 10_000)),
        ("a (batch, seq, d_sae) tensor of latent activations", sparse_random((2, 7, 64), 0.1)),
        ("a tensor with a single nonzero entry", single),
        ("an all-zero tensor", torch.zeros(1, 4, 16, device=device)),
        ("a tensor with negative entries (only positive ones are active)", with_negatives),
        ("a float64 tensor", sparse_random((3, 50), 0.1, torch.float64)),
        ("a 4-D tensor", sparse_random((2, 3, 4, 5), 0.3)),
    ]


def _drawn_cases(device: torch.device, seed: int) -> list[tuple[str, Tensor]]:
    """Other shapes, densities and a tenth of negative entries, drawn from `seed`."""
    generator = torch.Generator().manual_seed(seed)

    def sparse_random(shape: tuple[int, ...], density: float, dtype: torch.dtype = torch.float32) -> Tensor:
        values = torch.rand(shape, generator=generator) + 0.05
        keep = torch.rand(shape, generator=generator) < density
        signs = torch.where(torch.rand(shape, generator=generator) < 0.1, -1.0, 1.0)
        return torch.where(keep, values * signs, torch.zeros(())).to(dtype=dtype, device=device)

    single = torch.zeros(1, 1, 9, device=device)
    single[0, 0, int(torch.randint(9, (1,), generator=generator))] = 0.7
    return [
        ("a 1-D tensor", sparse_random((257,), 0.05)),
        ("a (batch, seq, d_sae) tensor", sparse_random((3, 11, 37), 0.15)),
        ("a tensor with negative entries (only positive ones are active)", sparse_random((2, 9, 13), 0.5)),
        ("a float64 4-D tensor", sparse_random((2, 2, 3, 5), 0.4, torch.float64)),
        ("a tensor with a single nonzero entry", single),
        ("an all-zero tensor", torch.zeros(2, 3, device=device)),
    ]


def _check_from_dense(SparseTensor: Any, label: str, dense: Tensor) -> None:
    where = f"SparseTensor.from_dense on {label}"
    result = call_learner(EXERCISE, SparseTensor.from_dense, dense)
    is_active = dense > 0
    want_values, want_indices = dense[is_active], is_active.nonzero()
    sparse = getattr(result, "sparse", None)
    if not (isinstance(sparse, tuple) and len(sparse) == 3):
        raise CheckFailed(EXERCISE, f"{where}: `.sparse` should be a tuple (values, indices, shape), but it is {shape_of(sparse)}.")
    values, indices, shape = sparse
    hint_indices = (
        "torch.argwhere(dense > 0) (or (dense > 0).nonzero()) gives one row per active entry and one column "
        "per dimension; keep that 2-D shape, even for a 1-D tensor or a single active entry."
    )
    if isinstance(indices, Tensor) and indices.shape != want_indices.shape:
        hint = hint_indices
        message = f"{where}: indices have shape {shape_of(indices)}, expected {shape_of(want_indices)}"
        if indices.ndim == 1 and want_indices.ndim == 2:
            hint = "The indices were squeezed. " + hint_indices
        elif indices.ndim >= 1 and len(indices) in (dense.numel(), int((dense >= 0).sum())) != len(want_indices):
            message += ": one for every entry, zeros included"
            hint = "Keep only the active (positive) entries: dense > 0."
        raise CheckFailed(EXERCISE, message + ".", hint)
    if isinstance(values, Tensor) and values.shape != want_values.shape and values.numel() == dense.numel():
        raise CheckFailed(
            EXERCISE,
            f"{where}: values have shape {shape_of(values)}: that is every entry, zeros included.",
            "Keep only the positive entries: dense[dense > 0].",
        )
    if isinstance(values, Tensor) and values.shape == want_values.shape and label.startswith("a tensor with negative"):
        if not torch.equal(values, want_values) and (values < 0).any():
            raise CheckFailed(EXERCISE, f"{where}: negative entries were kept.", "An active latent is a positive one: use dense > 0, not dense != 0.")
    if (
        isinstance(indices, Tensor)
        and indices.ndim == 2
        and indices.shape[1] > 1
        and not torch.equal(indices, want_indices)
        and torch.equal(indices.flip(-1), want_indices)
    ):
        raise CheckFailed(
            EXERCISE,
            f"{where}: the index columns are in reverse order (last dimension first).",
            "indices[i] = (i_1, ..., i_k) lists the dimensions in order: torch.argwhere(dense > 0) does that.",
        )
    compare_tensor(EXERCISE, f"{where}: indices (sparse[1])", indices, want_indices, hint_indices)
    compare_tensor(EXERCISE, f"{where}: values (sparse[0])", values, want_values, "values[i] must be the entry at indices[i], in the same (row-major) order.")
    if isinstance(values, Tensor) and values.dtype != dense.dtype:
        raise CheckFailed(EXERCISE, f"{where}: values have dtype {values.dtype}, but the dense tensor's is {dense.dtype}.")
    if tuple(shape) != tuple(dense.shape):
        raise CheckFailed(EXERCISE, f"{where}: the shape (sparse[2]) is {shape!r}, expected {tuple(dense.shape)}.", "Use tuple(dense.shape).")
    compare_tensor(EXERCISE, f"{where}: .dense", result.dense, dense)


def _check_from_sparse(SparseTensor: Any, label: str, dense: Tensor) -> None:
    where = f"SparseTensor.from_sparse on {label}"
    is_active = dense > 0
    sparse = (dense[is_active], is_active.nonzero(), tuple(dense.shape))
    dense = torch.where(is_active, dense, torch.zeros((), dtype=dense.dtype, device=dense.device))
    result = _call_from_sparse(SparseTensor, sparse)
    got = getattr(result, "dense", None)
    hint = None
    if isinstance(got, Tensor) and got.dtype != dense.dtype:
        hint = "Create the dense tensor with the values' dtype and device, e.g. torch.zeros(shape, dtype=values.dtype, device=values.device)."
    elif isinstance(got, Tensor) and got.device != dense.device:
        hint = "Create the dense tensor on the values' device."
    if isinstance(got, Tensor) and got.dtype != dense.dtype:
        raise CheckFailed(EXERCISE, f"{where}: .dense has dtype {got.dtype}, but the values' dtype is {dense.dtype}.", hint)
    compare_tensor(
        EXERCISE,
        f"{where}: .dense",
        got,
        dense,
        hint or "Scatter each value to its index: dense[indices.unbind(-1)] = values (one index tensor per dimension).",
    )
    if getattr(result, "sparse", None) is None or result.sparse[0] is not sparse[0]:
        raise CheckFailed(EXERCISE, f"{where}: `.sparse` should be the (values, indices, shape) tuple you were given.")


def _call_from_sparse(SparseTensor: Any, sparse: tuple) -> Any:
    try:
        return call_learner(EXERCISE, SparseTensor.from_sparse, sparse)
    except CheckFailed as failure:
        if failure.hint is not None or failure.learner_error is None:
            raise
        raise CheckFailed(
            EXERCISE,
            failure.message,
            "Index with one tensor per dimension: dense[indices.unbind(-1)] = values (indexing with the (n, k) "
            "matrix itself, dense[indices], picks whole slices along the first dimension).",
        ) from None


def _check_device_kept(SparseTensor: Any) -> None:
    """from_sparse must build the dense tensor on the values' device. On a CPU-only machine a forgotten
    device= goes unnoticed, so try values on the `meta` device (shapes only, no data): a dense tensor
    made with torch.zeros(shape) lands on the CPU instead."""
    values = torch.empty(3, device="meta")
    indices = torch.empty(3, 2, dtype=torch.long, device="meta")
    try:
        with learner_warnings(EXERCISE):
            dense = getattr(SparseTensor.from_sparse((values, indices, (4, 5))), "dense", None)
    except Exception:  # noqa: BLE001 (code that needs real data, e.g. .tolist(), cannot run on meta: nothing to learn here)
        return
    if isinstance(dense, Tensor) and dense.device != values.device:
        raise CheckFailed(
            EXERCISE,
            f"SparseTensor.from_sparse: with values on the {values.device} device, .dense is on {dense.device}.",
            "Create the dense tensor on the values' device (and with their dtype): "
            "torch.zeros(shape, dtype=values.dtype, device=values.device), or values.new_zeros(shape). "
            "Otherwise it breaks on a GPU.",
        )


def _check_differentiable(SparseTensor: Any, device: torch.device) -> None:
    """The gradient exercises differentiate through from_sparse with torch.func.jacrev."""
    indices = torch.tensor([[0, 1, 3], [0, 2, 0]], device=device)
    values = torch.tensor([1.5, 0.5], device=device)

    def total(v: Tensor) -> Tensor:
        return SparseTensor.from_sparse((v, indices, (1, 3, 4))).dense.sum()

    try:
        gradient = torch.func.grad(total)(values)
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001 (whatever stops jacrev here is the learner's to fix: reported, not raised)
        raise CheckFailed(
            EXERCISE,
            f"torch.func.grad could not differentiate through from_sparse: {type(error).__name__}: {error}",
            "Build the dense tensor from the values with tensor operations only (no .item(), .tolist() or "
            "Python loops over values, no torch.sparse); then jacrev can trace through it.",
        ) from None
    hint = None
    if isinstance(gradient, Tensor) and gradient.shape == values.shape and not gradient.any():
        hint = (
            "The gradient is zero: the dense tensor does not depend on the values as tensors. Copy the values "
            "in with tensor indexing (dense[indices.unbind(-1)] = values), not through .item(), .tolist() or float()."
        )
    compare_tensor(EXERCISE, "the gradient of from_sparse(values).dense.sum() w.r.t. the values", gradient, torch.ones_like(values), hint)


def test_sparse_tensor(SparseTensor: Any, *, part: str | None = None, seed: int | None = None) -> None:
    """Check SparseTensor.from_dense and SparseTensor.from_sparse on 1-D to 4-D tensors and corner cases.

    `part` ("from_dense" or "from_sparse") checks one of the two methods alone, for graders that give
    points for each; from_sparse's part includes differentiating through it. With a `seed` (the grader's
    hidden test, which compares returned values only), the cases are drawn from it, on the CPU, and the
    gradient and device checks are left to the visible check.
    """
    if part not in (None, "from_dense", "from_sparse"):
        raise ValueError(f"part should be None, 'from_dense' or 'from_sparse', not {part!r}")
    start = time.perf_counter()
    from part_utils.device import get_device

    devices = [torch.device("cpu")] + ([get_device()] if get_device().type != "cpu" and seed is None else [])
    for device in devices:
        if part in (None, "from_dense"):
            for label, dense in _cases(device, seed):
                _check_from_dense(SparseTensor, label, dense)
        if part in (None, "from_sparse"):
            for label, dense in _cases(device, seed):
                _check_from_sparse(SparseTensor, label, dense)
            if seed is None:
                call_learner(EXERCISE, _check_differentiable, SparseTensor, device)
    if part in (None, "from_sparse") and seed is None:
        _check_device_kept(SparseTensor)
    checked = "from_dense and from_sparse agree" if part is None else f"{part} agrees"
    passed(EXERCISE, f"{checked} with the reference on {len(_cases(devices[0], seed))} cases ({fmt_seconds(time.perf_counter() - start)})")


test_sparse_tensor.__test__ = False  # a learner check, not a test of this project: pytest must not collect it
