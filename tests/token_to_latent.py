"""Learner check for `token_to_latent_gradients`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor

import solutions
from part_utils.hooks import _get_hook_layer
from tests._compare import LatentJacobian, compare_jacobian, compare_sparse_tensor, require_sparse_tensor
from tests._exercise import one_layer_inputs, run_check
from tests._report import CheckFailed, close_enough, shape_of

EXERCISE = "test_token_to_latent_gradients"


def _scaled_before_positions(tokens: Tensor, sae: SAE, model: HookedSAETransformer) -> Tensor:
    """The Jacobian you get by scaling the token embeddings alone, before the positional ones are added."""

    def latents(scales: Tensor) -> Tensor:
        resid = model.embed(tokens) * scales[..., None] + model.pos_embed(tokens)
        dense = sae.encode(model(resid, start_at_layer=0, stop_at_layer=_get_hook_layer(sae)))
        return dense[dense.detach() > 0]

    return torch.func.jacrev(latents)(torch.ones(tokens.shape, device=tokens.device)).permute(1, 2, 0)


def _has_positional_embeddings(model: HookedSAETransformer) -> bool:
    return model.cfg.positional_embedding_type == "standard"


@torch.no_grad()
def _latent_acts_hint(got_dense: Any, tokens: Tensor, sae: SAE, model: HookedSAETransformer) -> str | None:
    """Name the mistake behind wrong latent activations, if they match a known one."""
    layer = _get_hook_layer(sae)
    embeddings = model(tokens, stop_at_layer=0)
    variants = {
        "Your latent activations are those of all-zero embeddings: evaluate the Jacobian at token_scales = "
        "torch.ones(...), where the model runs unchanged.": (torch.zeros_like(embeddings), layer),
    }
    if _has_positional_embeddings(model):  # with rotary positions, block 0's input is the token embedding alone
        variants[
            "Your latent activations come from the token embeddings alone: add the positional embeddings too "
            "(model(tokens, stop_at_layer=0) gives their sum)."
        ] = (model.embed(tokens), layer)
    for stop in (layer - 1, layer + 1):
        if 0 <= stop <= model.cfg.n_layers:
            variants[
                f"Your latent activations match stop_at_layer={stop}; it should be {layer}: an SAE on "
                f"blocks.{layer}.hook_resid_pre reads the input of block {layer}."
            ] = (embeddings, stop)
    for hint, (resid, stop) in variants.items():
        if close_enough(got_dense, sae.encode(model(resid, start_at_layer=0, stop_at_layer=stop))):
            return hint
    return None


def compare_token_to_latent(got: tuple, want: tuple, tokens: Tensor, sae: SAE, model: HookedSAETransformer) -> str:
    grads, latent_acts = got
    want_grads, want_acts = want
    require_sparse_tensor(EXERCISE, "latent_acts", latent_acts)
    acts_hint = None
    if not close_enough(latent_acts.dense, want_acts.dense):
        acts_hint = _latent_acts_hint(latent_acts.dense, tokens, sae, model)
    compare_sparse_tensor(EXERCISE, "latent_acts", latent_acts, want_acts, acts_hint)
    hint = None
    if isinstance(grads, Tensor) and grads.shape != want_grads.shape:
        if grads.shape == want_grads.permute(2, 0, 1).shape:
            hint = "jacrev returns (n_active, batch, seq); rearrange it to (batch, seq, n_active)."
        elif sae.cfg.d_sae in grads.shape[:-2] or grads.numel() == tokens.numel() * latent_acts.dense.numel():
            hint = (
                "This Jacobian has an entry for every latent, active or not. Return the values of the active latents "
                "(latent_acts.sparse[0]) from the function you differentiate, so there is one column per active latent."
            )
        elif grads.ndim == 4 or (grads.ndim == 3 and grads.shape[-1] == model.cfg.d_model):
            hint = "Differentiate with respect to one scale per position (token_scales of shape (batch, seq)), not the embedding vectors."
    elif isinstance(grads, Tensor) and not close_enough(grads, want_grads):
        with torch.enable_grad():
            if _has_positional_embeddings(model) and close_enough(grads, _scaled_before_positions(tokens, sae, model)):
                hint = (
                    "You scaled the token embeddings before adding the positional embeddings. Scale their sum: "
                    "model(tokens, stop_at_layer=0) gives it."
                )
    if not isinstance(grads, Tensor):
        raise CheckFailed(EXERCISE, f"token_latent_grads should be a Tensor, but it is a {shape_of(grads)}.")
    compare_jacobian(
        EXERCISE, "token_latent_grads", LatentJacobian(grads, None, latent_acts), LatentJacobian(want_grads, None, want_acts), hint, axes=("position", "active latent")
    )
    return f"gradients {shape_of(want_grads)} from {tokens.shape[-1]} tokens to {want_grads.shape[-1]} active latents match the reference"


def test_token_to_latent_gradients(
    token_to_latent_gradients: Any, model: HookedSAETransformer, saes: Mapping[int, SAE], *, prompt: str | None = None, layer: int | None = None, part: str | None = None
) -> None:
    """Check token_to_latent_gradients against the reference on this world's prompt and layer."""
    _, sae, tokens = one_layer_inputs(model, saes, "token_to_latent", prompt=prompt, layer=layer)
    run_check(
        EXERCISE, token_to_latent_gradients, solutions.token_to_latent_gradients, (tokens, sae, model), model, (sae,),
        n_outputs=2, compare=lambda got, want: compare_token_to_latent(got, want, tokens, sae, model), part=part,
    )


test_token_to_latent_gradients.__test__ = False  # a learner check, not a test of this project
