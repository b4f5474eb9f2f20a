"""Gradients between the active latents of two attention-output (hook_z) SAEs: finding induction circuits."""

from __future__ import annotations

from jaxtyping import Float, Int
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities import get_act_name

from part_utils.hooks import _get_hook_layer
from solutions.forward_mode import Path
from solutions.latent_to_latent import gradients_between_saes
from solutions.sparse_sae import clean_sae_activations, decode_sparse, encode_active
from solutions.sparse_tensor import SparseTensor


def latent_acts_to_later_latent_acts_attn(
    latent_acts_nonzero: Float[Tensor, " nonzero_acts"],
    latent_acts_nonzero_inds: Int[Tensor, "nonzero_acts n_indices"],
    latent_acts_shape: tuple[int, ...],
    sae_from: SAE,
    sae_to: SAE,
    model: HookedSAETransformer,
    resid_pre_clean: Tensor,
) -> tuple[Tensor, tuple[Tensor]]:
    """
    The later attention SAE's latents, when the earlier attention layer's `z` is replaced by the
    earlier SAE's reconstruction (decoded from the sparse latents given in the first three arguments).

    `resid_pre_clean` is the clean residual stream entering the earlier SAE's layer; the forward pass
    starts there. Returns (values of the active later latents, (dense later latents,)).
    """
    layer_from, layer_to = _get_hook_layer(sae_from), _get_hook_layer(sae_to)
    z_recon = decode_sparse(sae_from, latent_acts_nonzero, latent_acts_nonzero_inds, latent_acts_shape, model.cfg.d_head)
    captured: dict[str, Tensor] = {}

    def replace_z(z: Tensor, hook: HookPoint) -> Tensor:
        return z_recon

    def capture_z(z: Tensor, hook: HookPoint) -> None:
        captured["z"] = z

    fwd_hooks = [(get_act_name("z", layer_from), replace_z), (get_act_name("z", layer_to), capture_z)]
    with model.hooks(fwd_hooks=fwd_hooks):
        model(resid_pre_clean, start_at_layer=layer_from, stop_at_layer=layer_to + 1)
    values_next, dense_next = encode_active(sae_to, captured["z"])
    return values_next, (dense_next,)


def latent_to_latent_gradients_attn(
    tokens: Int[Tensor, "batch seq"],
    sae_from: SAE,
    sae_to: SAE,
    model: HookedSAETransformer,
) -> tuple[Tensor, SparseTensor, SparseTensor, SparseTensor]:
    """
    The gradients between every active latent of two attention SAEs (both reading concatenated `z`).

    Returns:
        latent_latent_gradients: (n_active_next_recon, n_active_prev)
        latent_acts_prev:        the earlier SAE's latent activations
        latent_acts_next:        the later SAE's true latent activations
        latent_acts_next_recon:  the later SAE's activations when the earlier layer's z is reconstructed
    """
    resid_pre_name, hook_to = get_act_name("resid_pre", _get_hook_layer(sae_from)), sae_to.cfg.metadata.hook_name
    # The earlier SAE's true activations, the later SAE's clean input and the clean residual stream
    # entering the earlier layer, from one clean forward pass (see clean_sae_activations).
    _, (acts_prev_dense,), cache = clean_sae_activations(
        model, tokens, [sae_from], stop_at_layer=_get_hook_layer(sae_to) + 1, extra_names=(resid_pre_name, hook_to)
    )
    # Forward mode stopped at the later hook_z (see solutions/forward_mode.py); the earlier SAE's decoder
    # rows enter z at one position, as (n_heads, d_head).
    return gradients_between_saes(
        latent_acts_to_later_latent_acts_attn,
        (sae_from, sae_to, model, cache[resid_pre_name]),
        SparseTensor.from_dense(acts_prev_dense),
        cache[hook_to],
        Path(_get_hook_layer(sae_from), True, _get_hook_layer(sae_to), True),
        (model.cfg.n_heads, model.cfg.d_head),
        cache[resid_pre_name],
    )
