"""Gradients from the active latents of a residual-stream SAE to the model's top logits."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor

from part_utils.hooks import _get_hook_layer
from solutions.sparse_sae import decode_sparse
from solutions.sparse_tensor import SparseTensor


def latent_acts_to_logits(
    latent_acts_nonzero: Float[Tensor, " nonzero_acts"],
    latent_acts_nonzero_inds: Int[Tensor, "nonzero_acts n_indices"],
    latent_acts_shape: tuple[int, ...],
    sae: SAE,
    model: HookedSAETransformer,
    token_ids: list[int] | None = None,
) -> tuple[Tensor, tuple[Tensor]]:
    """
    The final position's logits, computed from the SAE's reconstruction of the residual stream.

    Returns the logits of `token_ids` (what `jacrev` differentiates; all logits with a leading axis of
    size 1 when `token_ids` is None) and, in a length-1 tuple, all of the final position's logits.
    """
    resid = decode_sparse(sae, latent_acts_nonzero, latent_acts_nonzero_inds, latent_acts_shape, model.cfg.d_head)
    resid_final = model(resid, start_at_layer=_get_hook_layer(sae), stop_at_layer=model.cfg.n_layers)
    # Only the final position's logits are asked for, so only that position goes through the
    # unembedding: the other positions' logits would be a (seq, d_vocab) matrix to differentiate.
    normalized = model.ln_final(resid_final[:, -1:])[0, -1]
    logits_recon = (normalized @ model.W_U + model.b_U).detach()
    if token_ids is None:
        return (normalized @ model.W_U + model.b_U)[None], (logits_recon,)
    return normalized @ model.W_U[:, token_ids] + model.b_U[token_ids], (logits_recon,)


def latent_to_logit_gradients(
    tokens: Float[Tensor, "batch seq"],
    sae: SAE,
    model: HookedSAETransformer,
    k: int | None = None,
) -> tuple[Tensor, Tensor, Tensor, list[int] | None, SparseTensor]:
    """
    The gradients between the SAE's active latents and the model's top-k logits at the final position.

    Returns:
        latent_logit_gradients: (k, n_active_latents)
        logits:                 the model's true logits at the final position, (d_vocab,)
        logits_recon:           the final position's logits computed from the SAE's reconstruction
        token_ids:              the k token ids with the highest true logits, highest first (None if k is None)
        latent_acts:            the SAE's latent activations
    """
    assert tokens.shape[0] == 1, "Only supports batch size 1 for now"
    acts_name = f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post"
    with torch.no_grad():
        logits, cache = model.run_with_cache_with_saes(
            tokens, saes=[sae], use_error_term=True, names_filter=[acts_name], remove_batch_dim=False
        )
    logits = logits[0, -1]
    latent_acts = SparseTensor.from_dense(cache[acts_name])
    token_ids = None if k is None else logits.topk(k).indices.tolist()

    latent_logit_gradients, (logits_recon,) = torch.func.jacrev(latent_acts_to_logits, has_aux=True)(
        *latent_acts.sparse, sae, model, token_ids
    )
    return latent_logit_gradients, logits, logits_recon, token_ids, latent_acts
