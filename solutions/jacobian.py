"""How many Jacobian rows to compute at once."""

from __future__ import annotations

from sae_lens import HookedSAETransformer

# jacrev computes all rows of a Jacobian in one vectorised backward pass, holding every
# intermediate activation once per row. Past this many floats we split the rows into chunks: a
# little slower, but a long prompt no longer runs out of memory (2**28 floats = 1 GiB).
_MAX_FLOATS_IN_FLIGHT = 2**28


def jacobian_chunk_size(n_rows_expected: int, n_tokens: int, model: HookedSAETransformer) -> int | None:
    """A `chunk_size` for `torch.func.jacrev`: None (all rows at once) when they fit in memory."""
    # The widest activation a backward pass through a block holds per token is the MLP's hidden layer.
    floats_per_row = n_tokens * max(model.cfg.d_mlp or 0, 4 * model.cfg.d_model) * model.cfg.n_layers
    rows_that_fit = max(1, _MAX_FLOATS_IN_FLIGHT // floats_per_row)
    return None if n_rows_expected <= rows_that_fit else rows_that_fit
