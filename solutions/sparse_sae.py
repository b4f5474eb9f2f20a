"""SAE encoding and decoding that touch only the active latents.

The reference solutions differentiate through an SAE decoder (earlier SAE) and encoder (later SAE).
Written densely, as `sae.decode(dense_latents)` and `sae.encode(resid)`, every backward pass of the
Jacobian multiplies a (n_outputs, batch, seq, d_sae) gradient with a (d_sae, d_in) weight matrix:
at GPT-2's shape that is most of the work and most of the memory. Only the active latents matter,
so here the decoder adds up just their rows, and the encoder computes just the active latents'
pre-activations. The results equal `sae.decode` / `sae.encode` up to float rounding. Which latents
are active still takes a dense encoding (`encode_dense`), arranged to be fast at a prompt's few rows.

Only plain ReLU SAEs (`StandardSAE`, no activation normalisation) have these maths; any other SAE
goes through its own `encode` / `decode`, which is always correct, only slower.
"""

from __future__ import annotations

import math

import einops
import torch
from sae_lens import SAE, HookedSAETransformer, StandardSAE
from torch import Tensor
from transformer_lens.utilities import get_act_name

from solutions.plain_forward import blocks_forward, has_plain_blocks


def _is_plain_relu_sae(sae: SAE) -> bool:
    return type(sae) is StandardSAE and sae.cfg.normalize_activations == "none"


def decode_sparse(sae: SAE, values: Tensor, indices: Tensor, shape: tuple[int, ...], d_head: int | None) -> Tensor:
    """`sae.decode` of the dense tensor whose positive entries are `values` at `indices` (shape (n, k)).

    `d_head` is the model's head size, needed to unflatten a hook_z SAE's output into heads.
    """
    if not _is_plain_relu_sae(sae):
        dense = values.new_zeros(shape)
        dense[indices.unbind(-1)] = values
        return sae.decode(dense)
    *positions, latents = indices.unbind(-1)
    n_positions = math.prod(shape[:-1])
    flat_positions = torch.zeros_like(latents)
    for position, size in zip(positions, shape[:-1]):
        flat_positions = flat_positions * size + position
    # (position, active latent) weights: one nonzero per column. A matmul with the active decoder
    # rows then sums each position's latents, and its backward pass is a matmul too; gathering and
    # scattering one d_in-vector per active latent instead would cost a (rows, n_active, d_in)
    # tensor in every backward pass of the Jacobian.
    weights = torch.zeros(n_positions, len(latents), dtype=values.dtype, device=values.device)
    weights[flat_positions, torch.arange(len(latents), device=latents.device)] = 1.0
    out = ((weights * values) @ sae.W_dec[latents]).reshape(*shape[:-1], sae.cfg.d_in) + sae.b_dec
    if sae.cfg.reshape_activations == "hook_z":
        out = einops.rearrange(out, "... (n_heads d_head) -> ... n_heads d_head", d_head=d_head)
    return out


# The dense encoding a returned activation tensor needs is a product of a prompt's few rows with
# the whole encoder (GPT-2's is 75 MB). On the CPU, MKL runs such a product well below its speed on a
# few hundred rows; summed over contiguous slabs of 16 encoder rows it runs faster, up to 32 rows,
# from where one product is as fast or faster. The sum's order differs, so results differ by float
# rounding. `make bench` times the calls that use it (docs/performance.md).
_SLAB_ROWS, _MOST_ROWS_IN_SLABS = 16, 32


def _times_encoder(sae_in: Tensor, w_enc: Tensor) -> Tensor:
    """`sae_in @ w_enc`, in slabs of the encoder's rows where that is faster (above)."""
    rows = sae_in.reshape(-1, sae_in.shape[-1])
    if sae_in.device.type != "cpu" or len(rows) >= _MOST_ROWS_IN_SLABS:
        return sae_in @ w_enc
    product = rows[:, :_SLAB_ROWS] @ w_enc[:_SLAB_ROWS]
    for start in range(_SLAB_ROWS, w_enc.shape[0], _SLAB_ROWS):
        product.addmm_(rows[:, start : start + _SLAB_ROWS], w_enc[start : start + _SLAB_ROWS])
    return product.reshape(*sae_in.shape[:-1], w_enc.shape[-1])


def encode_dense(sae: SAE, sae_input: Tensor) -> Tensor:
    """`sae.encode(sae_input)`, with the encoder's product in slabs for a plain ReLU SAE on a few rows (above)."""
    if not _is_plain_relu_sae(sae):
        return sae.encode(sae_input)
    sae_in = sae.process_sae_in(sae_input)  # its hooks, hook_z's flattening and b_dec, as encode does
    hidden_pre = sae.hook_sae_acts_pre(_times_encoder(sae_in, sae.W_enc) + sae.b_enc)
    return sae.hook_sae_acts_post(sae.activation_fn(hidden_pre))


def encode_active(sae: SAE, sae_input: Tensor) -> tuple[Tensor, Tensor]:
    """The SAE's activations on `sae_input`: (values of the active latents, the dense activations).

    The values are differentiable and in the row-major order of `SparseTensor.from_dense`; the dense
    tensor is detached, since it only reports which latents fired and how strongly.
    """
    with torch.no_grad():
        dense = encode_dense(sae, sae_input)
    if not _is_plain_relu_sae(sae):
        return sae.encode(sae_input)[dense > 0], dense
    *positions, latents = (dense > 0).nonzero().unbind(-1)
    flat_input = sae_input.flatten(-2) if sae.cfg.reshape_activations == "hook_z" else sae_input
    centred = flat_input - sae.b_dec * sae.cfg.apply_b_dec_to_input
    # Every position against every active latent's encoder column, then each latent's own position:
    # (positions, n_active) is small, and keeps the backward pass a matmul (see decode_sparse).
    # index_select gathers the columns several times faster than W_enc[:, latents] on the CPU.
    pre_acts = centred[..., None, :] @ torch.index_select(sae.W_enc, 1, latents)
    pre_acts = pre_acts.squeeze(-2)[(*positions, torch.arange(len(latents), device=latents.device))]
    return torch.relu(pre_acts + sae.b_enc[latents]), dense


def clean_sae_activations(
    model: HookedSAETransformer,
    tokens: Tensor,
    saes: list[SAE],
    stop_at_layer: int,
    extra_names: tuple[str, ...] = (),
) -> tuple[Tensor, list[Tensor], dict[str, Tensor]]:
    """The SAEs' true activations on `tokens`: what `run_with_cache_with_saes(..., use_error_term=True)` caches.

    With the error term, a spliced-in SAE adds back exactly what it fails to reconstruct, so the model
    downstream sees its clean activations (up to float rounding). Running the clean model and encoding
    each SAE's input once gives the same activations for a quarter of the SAE work: the splice encodes
    and decodes twice (once for its output, once for the error term), densely, over d_sae latents.

    Returns (the model's output at `stop_at_layer`, each SAE's dense activations, the cache of `extra_names`).
    """
    names = [sae.cfg.metadata.hook_name for sae in saes]
    with torch.no_grad():
        if has_plain_blocks(model):  # the same blocks, without TransformerLens's weight copies (solutions/plain_forward.py)
            output, activations = blocks_forward(model, model(tokens, stop_at_layer=0), 0, stop_at_layer)
        else:
            output, cache = model.run_with_cache(
                tokens, names_filter=[*names, *extra_names], stop_at_layer=stop_at_layer, remove_batch_dim=False
            )
            # The output is what enters block `stop_at_layer`: a pass may stop right at an SAE reading it.
            activations = {**cache.cache_dict, get_act_name("resid_pre", stop_at_layer): output}
        acts = [encode_dense(sae, activations[name]) for sae, name in zip(saes, names)]
    return output, acts, {name: activations[name] for name in extra_names}
