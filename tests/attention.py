"""Learner check for `latent_to_latent_gradients_attn` (attention hook_z SAEs, the induction circuit)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sae_lens import SAE, HookedSAETransformer
from torch import Tensor

import solutions
from part_utils.worlds import exercise_settings
from tests._exercise import run_check
from tests._report import close_enough
from tests.latent_to_latent import compare_latent_to_latent

EXERCISE = "test_latent_to_latent_gradients_attn"


def _diagnose_recon(got_recon: Any, want_next_dense: Tensor) -> str | None:
    if close_enough(getattr(got_recon, "dense", None), want_next_dense):
        return (
            "Your reconstructed activations equal the true ones: the earlier layer's z was not replaced. Add a "
            "forward hook on the earlier layer's hook_z that returns the earlier SAE's reconstruction."
        )
    return None


def test_latent_to_latent_gradients_attn(
    latent_to_latent_gradients_attn: Any,
    model: HookedSAETransformer,
    attn_saes: Mapping[int, SAE],
    *,
    seed: int = 0,
    layer_from: int | None = None,
    layer_to: int | None = None,
) -> None:
    """Check latent_to_latent_gradients_attn against the reference on a repeated random sequence."""
    settings = exercise_settings(model).induction
    sae_from = attn_saes[settings.layer_from if layer_from is None else layer_from]
    sae_to = attn_saes[settings.layer_to if layer_to is None else layer_to]
    tokens = settings.repeated_tokens(model, seed)
    run_check(
        EXERCISE,
        latent_to_latent_gradients_attn,
        solutions.latent_to_latent_gradients_attn,
        (tokens, sae_from, sae_to, model),
        model,
        (sae_from, sae_to),
        n_outputs=4,
        compare=lambda got, want: compare_latent_to_latent(
            EXERCISE, got, want, lambda recon, want: _diagnose_recon(recon, want[2].dense)
        ),
    )


test_latent_to_latent_gradients_attn.__test__ = False  # a learner check, not a test of this project
