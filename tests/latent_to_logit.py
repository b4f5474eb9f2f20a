"""Learner check for `latent_to_logit_gradients`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sae_lens import SAE, HookedSAETransformer
from torch import Tensor

import solutions
from part_utils.worlds import exercise_settings
from tests._compare import compare_sparse_tensor, require_sparse_tensor
from tests._exercise import run_check
from tests._report import CheckFailed, close_enough, compare_tensor, shape_of

EXERCISE = "test_latent_to_logit_gradients"


def compare_latent_to_logit(got: tuple, want: tuple, k: int) -> str:
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
        compare_tensor(EXERCISE, name, value, reference, hint)

    if not isinstance(token_ids, list) or not all(isinstance(t, int) for t in token_ids):
        raise CheckFailed(EXERCISE, f"token_ids should be a list of {k} ints (use .tolist()), but it is a {shape_of(token_ids)}.")
    if token_ids != want_ids:
        hint = "Take the top k of the true logits at the final position: logits[0, -1].topk(k).indices.tolist()."
        if sorted(token_ids) == sorted(want_ids):
            hint = "Keep topk's order (highest logit first)."
        elif token_ids == want_recon.topk(k).indices.tolist():
            hint = "You took the top k of the reconstructed logits; take them from the true logits."
        raise CheckFailed(EXERCISE, f"token_ids are {token_ids[:5]}…, the reference's {want_ids[:5]}….", hint)
    compare_tensor(EXERCISE, "latent_logit_gradients", grads, want_grads)
    return f"gradients {shape_of(want_grads)} from {want_grads.shape[1]} active latents to the top {k} logits match the reference"


def test_latent_to_logit_gradients(
    latent_to_logit_gradients: Any,
    model: HookedSAETransformer,
    saes: Mapping[int, SAE],
    *,
    prompt: str | None = None,
    layer: int | None = None,
    k: int | None = None,
) -> None:
    """Check latent_to_logit_gradients against the reference on this world's prompt, layer and k."""
    settings = exercise_settings(model).latent_to_logit
    sae = saes[settings.layer if layer is None else layer]
    k = settings.k if k is None else k
    tokens = model.to_tokens(prompt or settings.prompt)
    run_check(
        EXERCISE,
        latent_to_logit_gradients,
        solutions.latent_to_logit_gradients,
        (tokens, sae, model, k),
        model,
        (sae,),
        n_outputs=5,
        compare=lambda got, want: compare_latent_to_logit(got, want, k),
    )


test_latent_to_logit_gradients.__test__ = False  # a learner check, not a test of this project
