"""Learner check for `latent_to_latent_gradients_attn` (attention hook_z SAEs, the induction circuit)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor
from transformer_lens.utilities import get_act_name

import solutions
from part_utils.hooks import _get_hook_layer
from tests._exercise import world_settings
from tests._report import close_enough
from tests.latent_to_latent import check_latent_pair

EXERCISE = "test_latent_to_latent_gradients_attn"


HINT_STOP_AT_LAYER = (
    "If your hook on the later layer's hook_z never ran, check stop_at_layer: blocks.{L}.attn.hook_z is computed "
    "inside block {L}, so the forward pass must stop after it, at stop_at_layer={L} + 1."
)


def _diagnose_recon(got_recon: Any, want: tuple, tokens: Tensor, sae_from: SAE, sae_to: SAE, model: HookedSAETransformer) -> str | None:
    got_dense = getattr(got_recon, "dense", None)
    if close_enough(got_dense, want[2].dense):
        return (
            "Your reconstructed activations equal the true ones: the earlier layer's z was not replaced. Add a "
            "forward hook on the earlier layer's hook_z that returns the earlier SAE's reconstruction."
        )
    # A forward pass that starts after the earlier layer never meets the hook that replaces its z.
    layer_from, layer_to = _get_hook_layer(sae_from), _get_hook_layer(sae_to)
    if layer_from + 1 <= layer_to:
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens, names_filter=get_act_name("resid_pre", layer_from))
            captured: list[Tensor] = []
            model.run_with_hooks(
                cache[get_act_name("resid_pre", layer_from)],
                start_at_layer=layer_from + 1,
                stop_at_layer=layer_to + 1,
                fwd_hooks=[(get_act_name("z", layer_to), lambda z, hook: captured.append(z))],
            )
        if captured and close_enough(got_dense, sae_to.encode(captured[0])):
            return (
                f"Your reconstructed activations match start_at_layer={layer_from + 1}; it should be {layer_from}, "
                "the layer whose z the earlier SAE reconstructs (the forward pass starts from the residual stream "
                "entering that layer)."
            )
    return None


def _exception_hint(error: BaseException, layer_to: int) -> str | None:
    if isinstance(error, (IndexError, KeyError)):
        return HINT_STOP_AT_LAYER.format(L=layer_to)
    return None


def test_latent_to_latent_gradients_attn(
    latent_to_latent_gradients_attn: Any,
    model: HookedSAETransformer,
    attn_saes: Mapping[int, SAE],
    *,
    seed: int = 0,
    layer_from: int | None = None,
    layer_to: int | None = None,
    part: str | None = None,
) -> None:
    """Check latent_to_latent_gradients_attn against the reference on a repeated random sequence."""
    settings = world_settings(model).attention
    sae_from = attn_saes[settings.layer_from if layer_from is None else layer_from]
    sae_to = attn_saes[settings.layer_to if layer_to is None else layer_to]
    tokens = settings.repeated_tokens(model, seed)
    check_latent_pair(
        EXERCISE,
        latent_to_latent_gradients_attn,
        solutions.latent_to_latent_gradients_attn,
        tokens,
        sae_from,
        sae_to,
        model,
        lambda recon, want: _diagnose_recon(recon, want, tokens, sae_from, sae_to, model),
        part,
        exception_hint=lambda error: _exception_hint(error, _get_hook_layer(sae_to)),
    )


test_latent_to_latent_gradients_attn.__test__ = False  # a learner check, not a test of this project
