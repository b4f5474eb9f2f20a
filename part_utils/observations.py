"""The expected observations of each exercise, for the world in use.

GPT-2's are in the notebook's text (from the original research). The toy world's are written here
from the facts `scripts/train_toy_world.py` measured on the shipped weights (`world.json`), so the
text and the weights cannot disagree.
"""

from __future__ import annotations

from typing import Any

from transformer_lens.utilities import get_act_name

from part_utils.world_types import ExerciseSettings, World

# Previous-token heads scoring within this of the chosen one are named beside it.
RIVAL_MARGIN = 0.02


def toy_observations(facts: dict[str, Any], settings: ExerciseSettings) -> dict[str, dict[str, list]]:
    """Per exercise: `observations` (sentences) and `dashboards` ((sae_id, latent) pairs to look at)."""
    l2l, logit, induction = settings.latent_to_latent, settings.latent_to_logit, settings.attention
    quality = facts["sae_quality"]

    def resid(layer: int) -> str:
        return get_act_name("resid_pre", layer)

    mass = facts["induction_rectangle_mass"]
    prev_scores = facts["prev_token_scores"]
    prev_head = max(induction.prev_token_heads, key=lambda head: prev_scores[head[0]][head[1]])
    best_prev = prev_scores[prev_head[0]][prev_head[1]]
    # Other heads that score nearly as well as the chosen one (within RIVAL_MARGIN), with the measured margin.
    rivals = {
        f"{layer}.{head}": score
        for layer, scores in enumerate(prev_scores)
        for head, score in enumerate(scores)
        if (layer, head) != tuple(prev_head) and score >= best_prev - RIVAL_MARGIN
    }
    induction_heads = ", ".join(f"{layer}.{head} ({facts['induction_scores'][layer][head]:.2f})" for layer, head in induction.induction_heads)
    second_half = facts["second_half_latents"]
    token_layer = settings.token_to_latent.layer
    iff_grads = facts["iff_token_gradients"]
    token_names = ("BOS", "'The'", "' E'", "'iff'")
    return {
        "latent_to_latent": {
            "observations": [
                f"F{l2l.layer_from}.{facts['e_latent']} on ' E' (position 2) -> F{l2l.layer_to}.{facts['iff_latent']} on 'iff' "
                f"(position 3), gradient {facts['e_iff_gradient']}: the largest between any latent at ' E' and any latent at "
                "'iff', a cross-position bigram circuit for words that start with ' E'.",
                f"Of the 50 largest |gradients|, {facts['same_position_share_top50']:.0%} connect latents at the same position.",
                f"The layer-{l2l.layer_from} SAE is very sparse (L0 {quality[resid(l2l.layer_from)]['l0']:.1f}): this model uses rotary "
                "positions, so its layer-0 residual stream holds only the token's embedding.",
            ],
            "dashboards": [[resid(l2l.layer_from), facts["e_latent"]], [resid(l2l.layer_to), facts["iff_latent"]]],
        },
        "token_to_latent": {
            "observations": [
                f"F{token_layer}.{facts['iff_latent']} at 'iff' gets gradients of about the same size from every token up to it: "
                + ", ".join(f"{name} {value:+.4f}" for name, value in zip(token_names, iff_grads))
                + ". In this world the token view does not single out ' E': the bigram shows in the latent-to-latent "
                "gradients, not in this probe.",
                "Every token after a latent's position has a gradient of exactly zero to it (the plot's lower-left corner "
                "is empty): no latent reads a later token.",
            ],
        },
        "latent_to_logit": {
            "observations": [
                f"' Paris' is the top prediction with probability {facts['paris_prob']:.1%}.",
                f"With the layer-{logit.layer} SAE spliced in, {quality[resid(logit.layer)]['top1_survival']:.0%} of the model's "
                f"top-1 predictions on held-out text survive (its reconstruction explains {quality[resid(logit.layer)]['fve']:.0%} of the variance).",
            ],
        },
        "attribution": {"observations": attribution_observations(facts, settings)},
        "latent_circuit": {"observations": circuit_observations(facts, settings)},
        "attention": {
            "observations": [
                f"Head {prev_head[0]}.{prev_head[1]} is the best previous-token head before layer {induction.layer_to} "
                f"(score {best_prev:.3f}), but only just: "
                + (
                    f"{', '.join(f'{name} ({score:.3f})' for name, score in rivals.items())} score within "
                    f"{best_prev - min(rivals.values()):.3f} of it, so layer {induction.layer_from} is a choice, not the only "
                    "place a previous-token head lives. "
                    if rivals
                    else f"no other head comes within {RIVAL_MARGIN}. "
                )
                + f"Induction heads: {induction_heads}.",
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


# An estimate "holds" when it is within this share of the measured effect (and of the same sign).
ESTIMATE_HOLDS = 0.5


def attribution_observations(facts: dict[str, Any], settings: ExerciseSettings) -> list[str]:
    """The estimate-vs-effect table, one line per latent, and what it shows."""
    logit = settings.latent_to_logit
    rows = facts["attribution"]

    def holds(pair: list[float]) -> bool:
        estimate, effect = pair
        return estimate * effect > 0 and abs(estimate - effect) <= ESTIMATE_HOLDS * abs(effect)

    lines = [
        f"Metric: the logit difference {logit.answer!r} - {logit.contrast!r} (and the probability of {logit.answer!r}); "
        "estimate = gradient x (activation - ablated value), effect = clean - ablated, SAE spliced in with its error term."
    ]
    for row in rows:
        layer, position, latent = row["key"]
        zero, mean = row["zero"], row["mean"]
        lines.append(
            f"F{layer}.{latent} at {row['token']!r} (position {position}; {row['source']}; activation {row['activation']:.3f}): "
            f"zero-ablation estimate {zero['difference'][0]:+.3f}, effect {zero['difference'][1]:+.3f}; "
            f"mean-ablation estimate {mean['difference'][0]:+.3f}, effect {mean['difference'][1]:+.3f} "
            f"(probability: estimate {zero['probability'][0]:+.5f}, effect {zero['probability'][1]:+.5f})"
        )
    n_hold = sum(holds(row["zero"]["difference"]) for row in rows)
    worst = max(rows, key=lambda row: abs(row["zero"]["difference"][1] - row["zero"]["difference"][0]))
    layer, position, latent = worst["key"]
    lines.append(
        f"The zero-ablation estimate is within {ESTIMATE_HOLDS:.0%} of the effect, with its sign, for {n_hold} of these {len(rows)} "
        f"latents. The worst: F{layer}.{latent} at {worst['token']!r}, estimate {worst['zero']['difference'][0]:+.3f} against an "
        f"effect of {worst['zero']['difference'][1]:+.3f}."
    )
    return lines


def circuit_observations(facts: dict[str, Any], settings: ExerciseSettings) -> list[str]:
    """The capstone's completeness per layer, and its necessity and sufficiency against the matched control."""
    lines = [
        f"Layer {layer}: the kept latents carry {share['kept']:.1%} of the summed |gradient x piece| of the logit difference "
        f"there; all active latents (the unpruned graph) {share['all_latents']:.1%}; the error nodes {share['errors']:.1%} "
        "(the rest is the decoder bias)."
        for layer, share in facts["circuit_completeness"].items()
    ]
    for result in facts["circuit_faithfulness"]:
        clean = result["clean"]
        for name in ("necessity", "sufficiency"):
            ablation = result[name]
            what = "zeroing the circuit's latents" if name == "necessity" else "zeroing every other active latent (errors kept)"
            lines.append(
                f"Layers {result['layers']}, {name}: {what} drops the logit difference from {clean[0]:.2f} by "
                f"{ablation['circuit'][0]:.2f} (the probability from {clean[1]:.4f} by {ablation['circuit'][1]:.4f}); the matched "
                f"control: {ablation['control_mean']:.2f} ± {ablation['control_std']:.2f} (mean ± standard deviation over "
                f"{ablation['draws']} draws); {ablation['control_beats']} draws do as well as the circuit."
            )
    return lines


def show_observations(world: World, exercise: str) -> None:
    """Show what this world shows in `exercise` (measured when the world was built), folded away.

    `exercise` is one of "latent_to_latent", "token_to_latent", "latent_to_logit", "attribution", "attention",
    "latent_circuit". In
    Jupyter the observations are a collapsed section, opened with a click (so the learner can look at
    the plot first); as plain text (a console, a test) they are a list.
    """
    from html import escape

    from IPython.display import display

    observations = world.facts.get(exercise, {}).get("observations", [])
    if observations:
        summary = f"What the {world.name} world shows here, measured (click to open)"
        text = "\n".join(f"• {line}" for line in observations)
        items = "".join(f"<li>{escape(line)}</li>" for line in observations)
        html = f"<details><summary><b>{escape(summary)}</b></summary><ul>{items}</ul></details>"
        display({"text/plain": text, "text/html": html}, raw=True)
    elif world.name == "gpt2":
        print("GPT-2's expected figures are in the notes above.")
    else:
        print(f"The {world.name} world has no recorded observations: its weights are random, so the pictures are noise.")
