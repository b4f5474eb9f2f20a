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
from tests._exercise import layer_pair_inputs
from tests._report import close_enough
from tests.latent_to_latent import check_latent_pair

EXERCISE = "test_latent_to_latent_gradients_attn"


HINT_HOOK_NEVER_RAN = (
    "The hook that records the later layer's z never ran, so there was nothing to encode. Check the hook name, "
    "get_act_name('z', {L}) (that is blocks.{L}.attn.hook_z), and that the forward pass gets that far: hook_z is "
    "computed inside block {L}, so stop_at_layer must be {L} + 1."
)
HINT_NOT_CACHED = (
    "The cache has no entry {name!r}: run_with_cache_with_saes keeps only the hooks named in names_filter, so "
    "add it there (the clean resid_pre of the earlier layer, and each SAE's hook_sae_acts_post)."
)


def _diagnose_recon(got_recon: Any, want: tuple, tokens: Tensor, sae_from: SAE, sae_to: SAE, model: HookedSAETransformer) -> str | None:
    got_dense = getattr(got_recon, "dense", None)
    with torch.no_grad():
        if close_enough(got_dense, sae_to.encode(sae_from.decode(want[1].dense))):
            return (
                f"Your later SAE encoded the z of layer {_get_hook_layer(sae_from)} (the reconstruction itself): record "
                f"the z of the later layer, get_act_name('z', {_get_hook_layer(sae_to)}), and encode that."
            )
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


def exception_hint_for_hooks(error: BaseException, layer_to: int, model: HookedSAETransformer) -> str | None:
    """An IndexError or KeyError in attention-SAE code: a misspelt hook, a hook that never ran, or a cache miss."""
    text = str(error).strip("'\"")
    if isinstance(error, KeyError) and text.startswith("blocks."):
        if text.split(".hook_sae")[0] in model.hook_dict or text in model.hook_dict:
            return HINT_NOT_CACHED.format(name=text)
        return f"There is no hook point named {text!r}. " + HINT_HOOK_NEVER_RAN.format(L=layer_to)
    if isinstance(error, IndexError) and "list index out of range" in str(error) or isinstance(error, KeyError):
        return HINT_HOOK_NEVER_RAN.format(L=layer_to)
    return None


def test_latent_to_latent_gradients_attn(
    latent_to_latent_gradients_attn: Any, model: HookedSAETransformer, attn_saes: Mapping[int, SAE], *,
    seed: int = 0, layer_from: int | None = None, layer_to: int | None = None, part: str | None = None,
) -> None:
    """Check latent_to_latent_gradients_attn against the reference on a repeated random sequence."""
    settings, sae_from, sae_to = layer_pair_inputs(model, attn_saes, "attention", layer_from=layer_from, layer_to=layer_to)
    tokens = settings.repeated_tokens(model, seed)
    check_latent_pair(
        EXERCISE, latent_to_latent_gradients_attn, solutions.latent_to_latent_gradients_attn, tokens, sae_from, sae_to, model,
        lambda recon, want: _diagnose_recon(recon, want, tokens, sae_from, sae_to, model), part,
        exception_hint=lambda error: exception_hint_for_hooks(error, _get_hook_layer(sae_to), model),
    )


test_latent_to_latent_gradients_attn.__test__ = False  # a learner check, not a test of this project
