"""Properties of SparseTensor (the reference, and what the learner check demands of any solution),
on tensors hypothesis draws: 1 to 4 dimensions, every float dtype, all-zero, a single nonzero."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tests as checks
from course_fixtures.catalogue import correct as correct_catalogue
from solutions import SparseTensor

pytestmark = pytest.mark.sparse_tensor

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
deterministic = settings(derandomize=True, max_examples=150, deadline=None, database=None)


@st.composite
def dense_tensors(draw: st.DrawFn, kind: str = "any") -> torch.Tensor:
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=4)))
    dtype = draw(st.sampled_from(DTYPES))
    n = math.prod(shape)
    if kind == "zero":
        return torch.zeros(shape, dtype=dtype)
    if kind == "single":
        dense = torch.zeros(n, dtype=dtype)
        dense[draw(st.integers(0, n - 1))] = draw(st.floats(0.125, 100.0, width=16))
        return dense.reshape(shape)
    values = draw(st.lists(st.floats(-4.0, 4.0, width=16), min_size=n, max_size=n))
    keep = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    dense = torch.tensor([v if k else 0.0 for v, k in zip(values, keep)], dtype=dtype)
    return dense.reshape(shape)


any_dense = st.one_of(dense_tensors(), dense_tensors("zero"), dense_tensors("single"))


@deterministic
@given(any_dense)
def test_from_dense_keeps_exactly_the_positive_entries_in_row_major_order(dense: torch.Tensor) -> None:
    values, indices, shape = SparseTensor.from_dense(dense).sparse
    assert shape == tuple(dense.shape)
    assert indices.shape == (int((dense > 0).sum()), dense.ndim)  # 2-D, even with 0 or 1 nonzero
    assert values.dtype == dense.dtype and (values > 0).all()
    assert torch.equal(dense[indices.unbind(-1)], values)
    flat = [sum(i * s for i, s in zip(row, torch.ones(dense.shape).stride())) for row in indices.tolist()]
    assert flat == sorted(flat) and len(set(flat)) == len(flat)


@deterministic
@given(any_dense)
def test_round_trip_dense_to_sparse_to_dense(dense: torch.Tensor) -> None:
    back = SparseTensor.from_sparse(SparseTensor.from_dense(dense).sparse).dense
    assert back.dtype == dense.dtype and back.shape == dense.shape and back.device == dense.device
    assert torch.equal(back, dense.clamp(min=0))


@deterministic
@given(any_dense)
def test_round_trip_sparse_to_dense_to_sparse(dense: torch.Tensor) -> None:
    sparse = SparseTensor.from_dense(dense.clamp(min=0)).sparse
    again = SparseTensor.from_dense(SparseTensor.from_sparse(sparse).dense).sparse
    assert torch.equal(again[0], sparse[0]) and torch.equal(again[1], sparse[1]) and again[2] == sparse[2]


@deterministic
@given(dense_tensors("single"))
def test_a_single_nonzero_keeps_its_dimensions(dense: torch.Tensor) -> None:
    x = SparseTensor.from_dense(dense)
    assert x.sparse[1].shape == (1, dense.ndim)
    assert x.values.shape == (1,)
    assert x.indices.shape == ((1,) if dense.ndim == 1 else (1, dense.ndim))


@deterministic
@given(dense_tensors("zero"))
def test_all_zero(dense: torch.Tensor) -> None:
    values, indices, _ = SparseTensor.from_dense(dense).sparse
    assert values.shape == (0,) and indices.shape == (0, dense.ndim)
    assert torch.equal(SparseTensor.from_sparse((values, indices, tuple(dense.shape))).dense, dense)


@deterministic
@given(dense_tensors().filter(lambda d: d.dtype in (torch.float32, torch.float64)))
def test_from_sparse_is_differentiable_with_unit_gradient(dense: torch.Tensor) -> None:
    values, indices, shape = SparseTensor.from_dense(dense).sparse
    weights = torch.arange(math.prod(shape), dtype=dense.dtype).reshape(shape)
    gradient = torch.func.grad(lambda v: (SparseTensor.from_sparse((v, indices, shape)).dense * weights).sum())(values)
    assert torch.equal(gradient, weights[indices.unbind(-1)])


@deterministic
@given(any_dense)
def test_correct_catalogue_agrees_with_the_reference(dense: torch.Tensor) -> None:
    """Every correct learner SparseTensor gives the reference's (values, indices, shape) and dense tensor."""
    want = SparseTensor.from_dense(dense)
    for cls in (correct_catalogue.ArgwhereZeros, correct_catalogue.NonzeroIndexPut, correct_catalogue.FlatScatter):
        got = cls.from_dense(dense)
        assert torch.equal(got.sparse[0], want.sparse[0]) and torch.equal(got.sparse[1], want.sparse[1])
        assert tuple(got.sparse[2]) == want.sparse[2]
        back = cls.from_sparse(want.sparse).dense
        assert back.dtype == dense.dtype and torch.equal(back, dense.clamp(min=0))


def test_smoke_the_check_accepts_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    checks.test_sparse_tensor(SparseTensor)
    assert "✓ test_sparse_tensor passed" in capsys.readouterr().out
