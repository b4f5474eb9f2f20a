"""Jacobians of the sparse maps the exercises differentiate, in whichever mode needs fewer passes.

`torch.func.jacrev` runs one backward pass per output, `torch.func.jacfwd` one forward (JVP) pass per
input; each costs about one forward pass of the model in between. The gradient exercises have a few
dozen to a few hundred entries on each side, so picking the smaller side saves up to half the work,
and forward mode holds no activations for a backward pass at all. Rows or columns are computed in
chunks, so that a long prompt needs bounded memory instead of running out of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from sae_lens import HookedSAETransformer
from torch import Tensor

# jacrev computes all rows of a Jacobian in one vectorised backward pass (jacfwd all columns in one
# forward pass), holding every intermediate activation once per row. Past this many floats we split
# the rows into chunks: a little slower, but a long prompt does not run out of memory, and the
# peak stays well under the straightforward version's (2**26 floats = 256 MiB).
_MAX_FLOATS_IN_FLIGHT = 2**26


def jacobian_chunk_size(n_rows_expected: int, n_tokens: int, model: HookedSAETransformer) -> int | None:
    """A `chunk_size` for `torch.func.jacrev` / `vmap`: None (all rows at once) when they fit in memory."""
    # The widest activation a backward pass through a block holds per token is the MLP's hidden layer.
    floats_per_row = n_tokens * max(model.cfg.d_mlp or 0, 4 * model.cfg.d_model) * model.cfg.n_layers
    rows_that_fit = max(1, _MAX_FLOATS_IN_FLIGHT // floats_per_row)
    return None if n_rows_expected <= rows_that_fit else rows_that_fit


def positionwise_chunk_size(n_columns: int, n_tokens: int, model: HookedSAETransformer) -> int:
    """Columns per chunk for the forward-mode Jacobians that follow tangents row by row (forward_mode.py).

    Forward mode keeps no activations for a backward pass: a column holds at most one row per token
    of the widest layer it is in at the time (the MLP's hidden layer, the attention's q, k and v, or
    its scores' tangents), not one per layer as `jacobian_chunk_size` assumes.
    """
    cfg = model.cfg
    floats_per_column = n_tokens * max(cfg.d_mlp or 0, 3 * cfg.d_model, 2 * cfg.n_heads * n_tokens)
    return max(1, min(n_columns, _MAX_FLOATS_IN_FLIGHT // floats_per_column))


def sparse_jacobian(
    fn: Callable[..., tuple[Tensor, Any]],
    inputs: Tensor,
    args: tuple[Any, ...],
    n_tokens: int,
    model: HookedSAETransformer,
) -> tuple[Tensor, Any]:
    """`jacrev(fn, has_aux=True)(inputs, *args)`, computed in forward or reverse mode, whichever is cheaper.

    `fn(inputs, *args)` returns (1-D outputs, aux). Returns (Jacobian of shape outputs.shape +
    inputs.shape, aux), exactly what jacrev returns.
    """
    # One forward pass first, recorded for reverse mode: it gives the auxiliary outputs and the number
    # of outputs, which (for the sparse maps here) is only known once the later SAE's active latents
    # are. Reverse mode then reuses it, as jacrev would; forward mode drops it.
    outputs, pullback, aux = torch.func.vjp(lambda x: fn(x, *args), inputs, has_aux=True)
    # The auxiliary outputs (a tuple of tensors here) report values; nothing differentiates them.
    outputs, aux = outputs.detach(), tuple(x.detach() for x in aux)
    n_out, n_in = outputs.numel(), inputs.numel()
    if n_out == 0 or n_in == 0:
        return inputs.new_zeros((*outputs.shape, *inputs.shape)), aux

    def outputs_of(x: Tensor) -> Tensor:
        return fn(x, *args)[0]

    if n_in <= 2 * n_out:
        # Forward mode: one JVP per input entry, batched over the standard basis. No autograd graph is
        # needed (no_grad), so nothing is kept per column beyond the layer being computed: with about
        # as many inputs as outputs it is the faster and leaner mode, so reverse mode is kept for
        # Jacobians with far fewer outputs (the top-k logits).
        del pullback  # the recorded pass's activations are not needed in forward mode
        basis = torch.eye(n_in, dtype=inputs.dtype, device=inputs.device).reshape(n_in, *inputs.shape)

        def column(tangent: Tensor) -> Tensor:
            return torch.func.jvp(outputs_of, (inputs,), (tangent,))[1]

        with torch.no_grad():
            columns = torch.func.vmap(column, chunk_size=jacobian_chunk_size(n_in, n_tokens, model))(basis)
        jacobian = columns.reshape(n_in, n_out).T.reshape(*outputs.shape, *inputs.shape)
        return jacobian, aux
    # Reverse mode: one backward pass per output entry, batched over the standard basis.
    basis = torch.eye(n_out, dtype=outputs.dtype, device=outputs.device).reshape(n_out, *outputs.shape)
    (rows,) = torch.func.vmap(pullback, chunk_size=jacobian_chunk_size(n_out, n_tokens, model))(basis)
    return rows.reshape(*outputs.shape, *inputs.shape), aux
