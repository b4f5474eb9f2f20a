"""Exercise 1: a tensor held both densely and as (values, indices, shape)."""

from __future__ import annotations

from torch import Tensor


class SparseTensor:
    """
    A non-negative tensor in two forms at once:
        dense:  the full tensor of shape (n1, ..., nk), zeros included.
        sparse: (values, indices, shape): the positive values, shape (n_nonzero,); their positions,
                shape (n_nonzero, k), in row-major order; and the dense tensor's shape.
    """

    sparse: tuple[Tensor, Tensor, tuple[int, ...]]
    dense: Tensor

    def __init__(self, sparse: tuple[Tensor, Tensor, tuple[int, ...]], dense: Tensor):
        self.sparse = sparse
        self.dense = dense

    @classmethod
    def from_dense(cls, dense: Tensor) -> SparseTensor:
        """Creates a SparseTensor from a dense tensor, keeping its positive entries."""
        is_active = dense > 0
        # Boolean indexing and nonzero() both walk the tensor in row-major order, so values[i] sits at indices[i].
        return cls((dense[is_active], is_active.nonzero(), tuple(dense.shape)), dense)

    @classmethod
    def from_sparse(cls, sparse: tuple[Tensor, Tensor, tuple[int, ...]]) -> SparseTensor:
        """Creates a SparseTensor from (values, indices, shape), scattering the values into a dense tensor."""
        values, indices, shape = sparse
        dense = values.new_zeros(shape)
        dense[indices.unbind(-1)] = values
        return cls(sparse, dense)

    @property
    def values(self) -> Tensor:
        return self.sparse[0].reshape(-1)

    @property
    def indices(self) -> Tensor:
        # A 1-D tensor's indices come back as a flat (n_nonzero,) vector; higher ranks keep (n_nonzero, k),
        # even with a single nonzero entry, so that `for (batch, seq, latent) in x.indices` always works.
        indices = self.sparse[1]
        return indices.squeeze(-1) if indices.shape[-1] == 1 else indices

    @property
    def shape(self) -> tuple[int, ...]:
        return self.sparse[2]
