"""Exercises 2 and 3: gradients between the active latents of two residual-stream SAEs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from jaxtyping import Float, Int
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor

from part_utils.hooks import _get_hook_layer
from solutions.forward_mode import Path, positionwise_jacobian
from solutions.sparse_sae import clean_sae_activations, decode_sparse, encode_active
from solutions.sparse_tensor import SparseTensor


def latent_acts_to_later_latent_acts(
    latent_acts_nonzero: Float[Tensor, " nonzero_acts"],
    latent_acts_nonzero_inds: Int[Tensor, "nonzero_acts n_indices"],
    latent_acts_shape: tuple[int, ...],
    sae_from: SAE,
    sae_to: SAE,
    model: HookedSAETransformer,
) -> tuple[Tensor, tuple[Tensor]]:
    """
    Maps the earlier SAE's latent activations (in sparse form) to the later SAE's latent activations,
    along the path: earlier SAE decoder -> the model's blocks in between -> later SAE encoder.

    Returns the later activations twice: as the values of the active latents (what `jacrev`
    differentiates), and as a dense tensor in a length-1 tuple (auxiliary output, not differentiated).
    """
    resid_from = decode_sparse(sae_from, latent_acts_nonzero, latent_acts_nonzero_inds, latent_acts_shape, model.cfg.d_head)
    resid_to = model(resid_from, start_at_layer=_get_hook_layer(sae_from), stop_at_layer=_get_hook_layer(sae_to))
    values_next, dense_next = encode_active(sae_to, resid_to)
    return values_next, (dense_next,)


def latent_to_latent_gradients(
    tokens: Int[Tensor, "batch seq"],
    sae_from: SAE,
    sae_to: SAE,
    model: HookedSAETransformer,
) -> tuple[Tensor, SparseTensor, SparseTensor, SparseTensor]:
    """
    The gradients between every active latent of `sae_from` and every active latent of `sae_to`.

    Returns:
        latent_latent_gradients: (n_active_next_recon, n_active_prev): d(later latent) / d(earlier latent)
        latent_acts_prev:        the earlier SAE's latent activations on `tokens`
        latent_acts_next:        the later SAE's true latent activations on `tokens`
        latent_acts_next_recon:  the later SAE's activations computed from the earlier SAE's reconstruction
    """
    # The earlier SAE's true activations and the later SAE's clean input, from one clean forward pass
    # (see clean_sae_activations); the later SAE encodes it beside the reconstruction's (gradients_between_saes).
    hook_to = sae_to.cfg.metadata.hook_name
    _, (acts_prev_dense,), cache = clean_sae_activations(
        model, tokens, [sae_from], stop_at_layer=_get_hook_layer(sae_to), extra_names=(hook_to,)
    )
    return gradients_between_saes(
        latent_acts_to_later_latent_acts,
        (sae_from, sae_to, model),
        SparseTensor.from_dense(acts_prev_dense),
        cache[hook_to],
        Path(_get_hook_layer(sae_from), False, _get_hook_layer(sae_to), False),
        (model.cfg.d_model,),
    )


def gradients_between_saes(
    to_later_latents: Callable[..., tuple[Tensor, tuple[Tensor]]],
    extra_args: tuple[Any, ...],
    latent_acts_prev: SparseTensor,
    clean_input_to: Tensor,
    path: Path,
    row_shape: tuple[int, ...],
    resid_pre: Tensor | None = None,
) -> tuple[Tensor, SparseTensor, SparseTensor, SparseTensor]:
    """The four results of a latent-to-latent exercise, residual or attention, given the earlier SAE's
    true activations and the later SAE's clean input (`clean_input_to`).

    The Jacobian is what `jacrev(to_later_latents, has_aux=True)(*latent_acts_prev.sparse, *extra_args)`
    returns (extra_args begin with sae_from, sae_to, model), computed in forward mode with each tangent
    kept to the positions it reaches (see solutions/forward_mode.py): one earlier latent moves the earlier
    SAE's hook at its own position only, by its decoder row, shaped as the hook's value at one position
    (`row_shape`: (d_model,) for the residual stream, (n_heads, d_head) for z). Where the path enters
    at the earlier layer's hook_z, `resid_pre` is the clean residual stream entering that layer.
    """
    values, indices, shape = latent_acts_prev.sparse
    sae_from, sae_to, model = extra_args[:3]
    with torch.no_grad():  # the earlier SAE's reconstruction: where the pass the Jacobian is taken along starts
        decoded = decode_sparse(sae_from, values, indices, shape, model.cfg.d_head)

    def entering_rows(columns: Tensor) -> tuple[Tensor, Tensor]:
        _, positions, latents = indices[columns].unbind(-1)
        return positions, sae_from.W_dec[latents].reshape(len(columns), *row_shape)

    latent_latent_gradients, (latent_acts_next_recon_dense, latent_acts_next_dense) = positionwise_jacobian(
        to_later_latents,
        values,
        (indices, shape, *extra_args),
        model,
        sae_from,
        sae_to,
        path,
        (resid_pre, decoded) if path.from_z else (decoded, None),
        entering_rows,
        clean_input_to,
    )
    return (
        latent_latent_gradients,
        latent_acts_prev,
        SparseTensor.from_dense(latent_acts_next_dense),
        SparseTensor.from_dense(latent_acts_next_recon_dense),
    )
