"""Learner check for `latent_to_logit_gradients`."""

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
from tests._report import CheckFailed, close_enough, compare_tensor, shape_of

EXERCISE = "test_latent_to_logit_gradients"


@torch.no_grad()
def _position_hint(got: Any, tokens: Tensor, model: HookedSAETransformer) -> str | None:
    """If `got` is the true logits at another position than the final one, say which."""
    if not isinstance(got, Tensor) or got.ndim != 1:
        return None
    position = _earlier_position_matching(got, model(tokens)[0])
    if position is None:
        return None
    return f"These are the logits at position {position}; the gradients are for the final position's logits: logits[0, -1]."


def _gradient_position_hint(grads: Tensor, acts: Any, token_ids: list[int], sae: SAE, model: HookedSAETransformer) -> str | None:
    """If `grads` are the gradients of another position's logits than the final one, say which."""
    values, indices, shape = acts.sparse

    def every_position(values: Tensor) -> Tensor:
        dense = torch.zeros(shape, dtype=values.dtype, device=values.device).index_put(tuple(indices.T), values)
        return model(sae.decode(dense), start_at_layer=_get_hook_layer(sae))[0][:, token_ids]

    with torch.enable_grad():
        jacobians = torch.func.jacrev(every_position)(values)  # (seq, k, n_active)
    position = _earlier_position_matching(grads, jacobians)
    if position is None:
        return None
    return (
        f"Your gradients are those of the logits at position {position}; differentiate the final position's "
        "logits: index the model's output with [0, -1] in the function you pass to jacrev."
    )


def _earlier_position_matching(got: Tensor, per_position: Tensor) -> int | None:
    """The first position before the final one whose slice of `per_position` matches `got`, if any."""
    return next((position for position in range(per_position.shape[0] - 1) if close_enough(got, per_position[position])), None)


@torch.no_grad()
def _recon_hint(got: Any, want_acts: Any, sae: SAE, model: HookedSAETransformer) -> str | None:
    """If `got` is the reconstructed logits with the SAE's reconstruction entering one layer off, say so."""
    if not isinstance(got, Tensor):
        return None
    layer = _get_hook_layer(sae)
    resid = sae.decode(want_acts.dense)
    for start in (layer - 1, layer + 1):
        if 0 <= start <= model.cfg.n_layers and close_enough(got, model(resid, start_at_layer=start)[0, -1]):
            return (
                f"Your reconstructed logits match start_at_layer={start}; it should be {layer}: an SAE on "
                f"blocks.{layer}.hook_resid_pre reconstructs the input of block {layer}."
            )
    return None


def compare_latent_to_logit(
    got: tuple, want: tuple, k: int, tokens: Tensor, sae: SAE, model: HookedSAETransformer
) -> str:
    grads, logits, logits_recon, token_ids, latent_acts = got
    want_grads, want_logits, want_recon, want_ids, want_acts = want
    require_sparse_tensor(EXERCISE, "latent_acts", latent_acts)
    compare_sparse_tensor(
        EXERCISE,
        "latent_acts",
        latent_acts,
        want_acts,
        "The SAE's true activations come from run_with_cache_with_saes(tokens, saes=[sae], use_error_term=True).",
    )
    for name, value, reference in (("logits", logits, want_logits), ("logits_recon", logits_recon, want_recon)):
        hint = None
        if isinstance(value, Tensor) and value.ndim > 1:
            hint = f"Return only the final position's logits, shape {shape_of(reference)}: logits[0, -1]."
        elif name == "logits" and close_enough(value, want_recon):
            hint = "These are the reconstructed logits. The true logits come from the run with use_error_term=True."
        elif not close_enough(value, reference):
            hint = _position_hint(value, tokens, model) or (_recon_hint(value, want_acts, sae, model) if name == "logits_recon" else None)
        compare_tensor(EXERCISE, name, value, reference, hint)

    if not isinstance(token_ids, list) or not all(isinstance(t, int) for t in token_ids):
        raise CheckFailed(
            EXERCISE,
            f"token_ids should be a list of {k} ints, but it is a {shape_of(token_ids)}.",
            "Turn topk's indices into a Python list with .tolist(): logits.topk(k).indices.tolist().",
        )
    if token_ids != want_ids:
        hint = "Take the top k of the true logits at the final position: logits[0, -1].topk(k).indices.tolist()."
        if sorted(token_ids) == sorted(want_ids):
            hint = "Keep topk's order (highest logit first)."
        elif token_ids == want_recon.topk(k).indices.tolist():
            hint = (
                "You took the top k of the reconstructed logits; take them from the true logits, those of the run "
                "with use_error_term=True (without it, the spliced-in SAE's reconstruction replaces the residual stream)."
            )
        raise CheckFailed(EXERCISE, f"token_ids are {token_ids[:5]}…, the reference's {want_ids[:5]}….", hint)
    hint = None
    if isinstance(grads, Tensor) and grads.shape == want_grads.shape[::-1] and grads.shape[0] != grads.shape[1]:
        hint = "The Jacobian is transposed: rows are the top-k logits (outputs), columns the active latents (inputs)."
    elif isinstance(grads, Tensor) and grads.ndim == 2 and grads.shape[0] == model.cfg.d_vocab:
        hint = "This Jacobian has a row for every logit: differentiate only the logits of the top k token ids."
    elif isinstance(grads, Tensor) and grads.shape == want_grads.shape and not close_enough(grads, want_grads):
        hint = _gradient_position_hint(grads, want_acts, want_ids, sae, model)
    compare_jacobian(
        EXERCISE, "latent_logit_gradients", LatentJacobian(grads, None, latent_acts), LatentJacobian(want_grads, None, want_acts), hint, axes=("top-k logit", "active latent")
    )
    return f"gradients {shape_of(want_grads)} from {want_grads.shape[1]} active latents to the top {k} logits match the reference"


def test_latent_to_logit_gradients(
    latent_to_logit_gradients: Any, model: HookedSAETransformer, saes: Mapping[int, SAE], *,
    prompt: str | None = None, layer: int | None = None, k: int | None = None, part: str | None = None,
) -> None:
    """Check latent_to_logit_gradients against the reference on this world's prompt, layer and k."""
    settings, sae, tokens = one_layer_inputs(model, saes, "latent_to_logit", prompt=prompt, layer=layer, k=k)
    k = settings.k
    run_check(
        EXERCISE, latent_to_logit_gradients, solutions.latent_to_logit_gradients, (tokens, sae, model, k), model, (sae,),
        n_outputs=5, compare=lambda got, want: compare_latent_to_logit(got, want, k, tokens, sae, model), part=part,
    )


test_latent_to_logit_gradients.__test__ = False  # a learner check, not a test of this project
