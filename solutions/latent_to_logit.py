"""Gradients from the active latents of a residual-stream SAE to the model's top logits."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry
from transformer_lens.components import TransformerBlock

from part_utils.hooks import _get_hook_layer
from solutions.jacobian import jacobian_chunk_size, sparse_jacobian
from solutions.plain_forward import blocks_forward, has_plain_blocks, layer_norm
from solutions.sparse_sae import clean_sae_activations, decode_sparse
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
    normalized = _final_normalized(model, resid, _get_hook_layer(sae))
    # Only the final position's logits are asked for, so only that position goes through the
    # unembedding: the other positions' logits would be a (seq, d_vocab) matrix to differentiate.
    logits_recon = normalized.detach() @ model.W_U + model.b_U
    if token_ids is None:
        return (normalized @ model.W_U + model.b_U)[None], (logits_recon,)
    return normalized @ model.W_U[:, token_ids] + model.b_U[token_ids], (logits_recon,)


def _final_normalized(model: HookedSAETransformer, resid: Tensor, layer: int) -> Tensor:
    """The final position's normalised residual stream (what the unembedding reads), from `resid` entering block `layer`."""
    last_layer = model.cfg.n_layers - 1
    resid_final = model(resid, start_at_layer=layer, stop_at_layer=last_layer)
    resid_final = _final_position_through_block(model.blocks[last_layer], resid_final)
    return model.ln_final(resid_final)[0, -1]


def _final_position_through_block(block: TransformerBlock, resid: Tensor) -> Tensor:
    """The block's output at the final position only, (batch, 1, d_model).

    The last block's other positions feed nothing the final logits read, except through their keys
    and values: so only those are computed for them, handed to the block as a (frozen) key-value cache,
    which is how TransformerLens runs one new position during generation. Their queries, attention
    outputs and MLPs are skipped: in every backward pass of the Jacobian, too.
    """
    earlier = block.ln1(resid[:, :-1])
    _, keys, values = block.attn.calculate_qkv_matrices(earlier, earlier, earlier)
    cache = TransformerLensKeyValueCacheEntry(past_keys=keys, past_values=values, frozen=True)
    return block(resid[:, -1:], past_kv_cache_entry=cache)


def latent_to_logit_gradients(
    tokens: Int[Tensor, "batch seq"],
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
    layer = _get_hook_layer(sae)
    # One clean forward pass up to the SAE gives its true activations (see clean_sae_activations); the
    # clean pass goes on from there with the last block at the final position only, as the pass from
    # the reconstruction does.
    resid_clean, (acts_dense,), _ = clean_sae_activations(model, tokens, [sae], stop_at_layer=layer)
    latent_acts = SparseTensor.from_dense(acts_dense)
    values, indices, shape = latent_acts.sparse
    with torch.no_grad():
        if has_plain_blocks(model):  # the same blocks, without TransformerLens's weight copies (solutions/plain_forward.py)
            resid_final, _ = blocks_forward(model, resid_clean, layer, model.cfg.n_layers, final_query_only=True)
            normalized = model.ln_final(resid_final)[0, -1]
        else:
            normalized = _final_normalized(model, resid_clean, layer)
    if k is None:  # every logit: forward mode, through the exercise's own map
        logits = normalized @ model.W_U + model.b_U
        latent_logit_gradients, (logits_recon,) = sparse_jacobian(
            latent_acts_to_logits, values, (indices, shape, sae, model, None), tokens.numel(), model
        )
        return latent_logit_gradients, logits, logits_recon, None, latent_acts

    # Reverse mode, one backward pass per top logit, through the pass from the reconstruction to the
    # final normalised residual stream (recorded once; through plain blocks, their graph written for
    # reverse mode, see solutions/plain_forward.py). The unembedding after it is linear, so the top
    # logits' cotangents there are just their columns of W_U; and the true and the reconstructed
    # logits are unembedded together, in one product: each reads all of the (d_model, d_vocab) W_U,
    # which on a CPU takes longer than the arithmetic.
    leaf = values.detach().requires_grad_()
    with torch.enable_grad():
        resid = decode_sparse(sae, leaf, indices, shape, model.cfg.d_head)
        if has_plain_blocks(model):
            resid_final, _ = blocks_forward(model, resid, layer, model.cfg.n_layers, final_query_only=True, for_reverse_mode=True)
            normalized_recon = layer_norm(model.ln_final, resid_final)[0, -1]
        else:
            normalized_recon = _final_normalized(model, resid, layer)
    with torch.no_grad():
        logits, logits_recon = torch.stack([normalized, normalized_recon.detach()]) @ model.W_U + model.b_U
    token_ids = logits.topk(k).indices.tolist()
    if k == 0:  # no logit asked for: no backward pass, an empty Jacobian
        return leaf.new_zeros(0, len(leaf)), logits, logits_recon, token_ids, latent_acts
    cotangents = torch.index_select(model.W_U, 1, torch.tensor(token_ids, device=model.W_U.device)).T.detach()
    # The cotangents in chunks (backward passes batched over each chunk), so that a long prompt needs bounded memory.
    chunk = jacobian_chunk_size(k, tokens.numel(), model) or k
    rows = [
        torch.autograd.grad(normalized_recon, leaf, cotangents[start : start + chunk], retain_graph=True, is_grads_batched=True)[0]
        for start in range(0, k, chunk)
    ]
    return torch.cat(rows), logits, logits_recon, token_ids, latent_acts
