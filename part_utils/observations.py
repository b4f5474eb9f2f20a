"""The expected observations of each exercise, for the world in use.

GPT-2's are in the notebook's text (from the original research). The toy world's are written here
from the facts `scripts/train_toy_world.py` measured on the shipped weights (`world.json`), so the
text and the weights cannot disagree.
"""

from __future__ import annotations

from typing import Any

from transformer_lens.utilities import get_act_name

from part_utils.world_types import ExerciseSettings, World


def toy_observations(facts: dict[str, Any], settings: ExerciseSettings) -> dict[str, dict[str, list]]:
    """Per exercise: `observations` (sentences) and `dashboards` ((sae_id, latent) pairs to look at)."""
    l2l, logit, induction = settings.latent_to_latent, settings.latent_to_logit, settings.attention
    quality = facts["sae_quality"]

    def resid(layer: int) -> str:
        return get_act_name("resid_pre", layer)

    mass = facts["induction_rectangle_mass"]
    prev_head = max(induction.prev_token_heads, key=lambda head: facts["prev_token_scores"][head[0]][head[1]])
    induction_heads = ", ".join(f"{layer}.{head} ({facts['induction_scores'][layer][head]:.2f})" for layer, head in induction.induction_heads)
    second_half = facts["second_half_latents"]
    return {
        "latent_to_latent": {
            "observations": [
                f"F{l2l.layer_from}.{facts['e_latent']} on ' E' (position 2) drives F{l2l.layer_to}.{facts['iff_latent']} on 'iff' "
                f"(position 3) with a gradient of {facts['e_iff_gradient']}: a cross-position bigram circuit for words that start with ' E'.",
                "Most other large gradients connect latents at the same position.",
                f"The layer-{l2l.layer_from} SAE is very sparse (L0 {quality[resid(l2l.layer_from)]['l0']:.1f}): this model uses rotary "
                "positions, so its layer-0 residual stream holds only the token's embedding.",
            ],
            "dashboards": [[resid(l2l.layer_from), facts["e_latent"]], [resid(l2l.layer_to), facts["iff_latent"]]],
        },
        "token_to_latent": {
            "observations": [
                f"The ' E' row has a clear gradient to F{settings.token_to_latent.layer}.{facts['iff_latent']} at 'iff': the same bigram, seen from the tokens."
            ],
        },
        "latent_to_logit": {
            "observations": [
                f"' Paris' is the top prediction with probability {facts['paris_prob']:.1%}.",
                f"With the layer-{logit.layer} SAE spliced in, {quality[resid(logit.layer)]['top1_survival']:.0%} of the model's "
                f"top-1 predictions on held-out text survive (its reconstruction explains {quality[resid(logit.layer)]['fve']:.0%} of the variance).",
            ],
        },
        "attention": {
            "observations": [
                f"Head {prev_head[0]}.{prev_head[1]} is a previous-token head (score {facts['prev_token_scores'][prev_head[0]][prev_head[1]]:.2f}); "
                f"induction heads: {induction_heads}.",
                f"Mean |gradient| per cell is {mass['inside'] / mass['outside']:.1f}x larger inside the outlined induction cells than outside them.",
                (
                    f"Layer-{induction.layer_to} latent(s) {second_half} fire on every token of the second half: induction latents."
                    if second_half
                    else "No single latent fires on every token of the second half on this sequence."
                ),
            ],
            "dashboards": [[get_act_name("z", induction.layer_to), latent] for latent in second_half],
        },
    }


def show_observations(world: World, exercise: str) -> None:
    """Print what this world shows in `exercise` (measured when the world was built), if it is known.

    `exercise` is one of "latent_to_latent", "token_to_latent", "latent_to_logit", "attention".
    """
    observations = world.facts.get(exercise, {}).get("observations", [])
    if observations:
        for line in observations:
            print(f"• {line}")
    elif world.name == "gpt2":
        print("GPT-2's expected figures are in the text above.")
    else:
        print(f"The {world.name} world has no recorded observations: its weights are random, so the pictures are noise.")
