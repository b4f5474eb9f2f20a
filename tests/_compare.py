"""Comparing a learner's SparseTensors and Jacobians with the reference's."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from tests._report import CheckFailed, compare_tensor, shape_of, tolerances


def require_sparse_tensor(exercise: str, name: str, value: Any) -> None:
    """The learner may use their own SparseTensor class; it needs `.sparse` (3-tuple) and `.dense`."""
    sparse = getattr(value, "sparse", None)
    if not (isinstance(sparse, tuple) and len(sparse) == 3 and isinstance(getattr(value, "dense", None), Tensor)):
        raise CheckFailed(
            exercise,
            f"{name} should be a SparseTensor (with .sparse = (values, indices, shape) and .dense), but it is a {shape_of(value)}.",
            "Wrap dense activations with SparseTensor.from_dense(...).",
        )


def compare_sparse_tensor(exercise: str, name: str, got: Any, want: Any, hint: str | None = None) -> None:
    require_sparse_tensor(exercise, name, got)
    compare_tensor(exercise, f"{name}.dense", got.dense, want.dense, hint)
    values, indices, shape = got.sparse
    if tuple(shape) != tuple(want.shape):
        raise CheckFailed(exercise, f"{name}.sparse[2] (the shape) is {tuple(shape)}, but should be {tuple(want.shape)}.", hint)
    if not isinstance(indices, Tensor) or indices.ndim != 2 or indices.shape[1] != len(want.shape):
        raise CheckFailed(
            exercise,
            f"{name}.sparse[1] (the indices) has shape {shape_of(indices)}; it should be (n_nonzero, {len(want.shape)}).",
            hint,
        )


def _index_rows(indices: Tensor) -> list[tuple[int, ...]]:
    return [tuple(row) for row in indices.reshape(len(indices), -1).tolist()]


class LatentJacobian(NamedTuple):
    """A Jacobian whose last two axes, rows (outputs) and columns (inputs), are labelled by the active latents
    of SparseTensors. An axis labelled None is not indexed by latents (the top-k logits, the token positions):
    the check has compared its labels already, so it must match as it is. Leading axes (a batch) match as they are."""

    values: Any
    rows: Any
    cols: Any


def compare_jacobian(
    exercise: str,
    name: str,
    got: LatentJacobian,
    want: LatentJacobian,
    hint: str | None = None,
    axes: tuple[str, str] = ("active later latent", "active earlier latent"),
) -> None:
    """Compare Jacobians whose rows and columns are labelled by the active latents of SparseTensors.

    A correct learner's active set can differ from the reference's by latents whose activation is a
    rounding error away from zero (a pre-activation of ~1e-7 that one formulation rounds up and the
    other down; on a GPU this happens at GPT-2's shape). Rows and columns are matched by latent index,
    and those near-zero latents are ignored. `axes` names what a row and a column stand for.
    """
    if not isinstance(got.values, Tensor):
        raise CheckFailed(exercise, f"{name} should be a Tensor, but it is a {shape_of(got.values)}.", hint)
    if got.values.shape == want.values.shape and _same_labels(got.rows, want.rows) and _same_labels(got.cols, want.cols):
        compare_tensor(exercise, name, got.values, want.values, hint)
        return
    expected = (*want.values.shape[:-2], _count(got.rows, want.values.shape[-2]), _count(got.cols, want.values.shape[-1]))
    if tuple(got.values.shape) != expected:
        raise CheckFailed(
            exercise,
            f"{name} has shape {shape_of(got.values)}, but with the activations you returned it should be {expected}: "
            f"one row per {axes[0]} and one column per {axes[1]} (the reference's is {shape_of(want.values)}).",
            hint,
        )
    compare_tensor(exercise, name, *aligned_jacobians(exercise, name, got, want, hint), hint)


def aligned_jacobians(exercise: str, name: str, got: LatentJacobian, want: LatentJacobian, hint: str | None = None) -> tuple[Tensor, Tensor]:
    """Both Jacobians on the rows and columns of the latents active in both, in the same order.

    Raises CheckFailed when a latent active in only one has more than a rounding error's activation.
    """
    rows = _aligned(exercise, name, "rows", got.rows, want.rows, hint)
    cols = _aligned(exercise, name, "columns", got.cols, want.cols, hint)
    return got.values[..., rows[0], :][..., cols[0]], want.values[..., rows[1], :][..., cols[1]]


def _same_labels(got: Any, want: Any) -> bool:
    return got is None or torch.equal(got.sparse[1], want.sparse[1])


def _count(labels: Any, unlabelled: int) -> int:
    return unlabelled if labels is None else len(labels.sparse[0])


def _aligned(exercise: str, name: str, axis: str, got: Any, want: Any, hint: str | None) -> tuple[Tensor | slice, Tensor | slice]:
    if got is None:  # not latents: the same labels on both sides, all kept
        return slice(None), slice(None)
    got_at = {index: i for i, index in enumerate(_index_rows(got.sparse[1]))}
    want_at = {index: i for i, index in enumerate(_index_rows(want.sparse[1]))}
    _, atol_relative = tolerances(want.dense.device)
    # Detached: float() of a tensor that still requires grad warns on stderr, which nbgrader scores as a failure.
    want_dense, got_dense = want.dense.detach(), got.dense.detach()
    negligible = atol_relative * max(float(want_dense.abs().max()) if want_dense.numel() else 0.0, 1e-6)
    for index in got_at.keys() ^ want_at.keys():
        value = float(want_dense[index]) if index in got_at else float(got_dense[index])
        if abs(value) > negligible:
            raise CheckFailed(
                exercise,
                f"the {axis} of {name} are labelled by a different set of active latents than the reference's "
                f"(e.g. {index}, activation {value:.3g}).",
                hint,
            )
    common = [index for index in want_at if index in got_at]
    device = want.dense.device
    return (
        torch.tensor([got_at[index] for index in common], dtype=torch.long, device=device),
        torch.tensor([want_at[index] for index in common], dtype=torch.long, device=device),
    )
