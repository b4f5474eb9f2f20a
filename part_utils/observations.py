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
    # Other heads that score nearly as well as the chosen one (within RIVAL_MARGIN), with the measured margin; only
    # heads before the induction layer, since only those can feed its induction heads.
    rivals = {
        f"{layer}.{head}": score
        for layer, scores in enumerate(prev_scores[: induction.layer_to])
        for head, score in enumerate(scores)
        if (layer, head) != tuple(prev_head) and score >= best_prev - RIVAL_MARGIN
    }
    induction_heads = ", ".join(f"{layer}.{head} ({facts['induction_scores'][layer][head]:.2f})" for layer, head in induction.induction_heads)
    second_half = facts["induction_latents"]
    token_layer = settings.token_to_latent.layer
    iff_grads = facts["iff_token_gradients"]
    token_names = ("BOS", "'The'", "' E'", "'iff'")
    eiffel = facts["city_country"]["Eiffel tower"]
    shares = facts["gradient_shares"]
    return {
        "world": {"observations": _world_observations(facts, settings, rivals, prev_head)},
        "latent_to_latent": {
            "observations": [
                f"On this prompt, F{l2l.layer_from}.{facts['e_latent']} on ' E' (position 2) -> F{l2l.layer_to}.{facts['iff_latent']} "
                f"on 'iff' (position 3), gradient {facts['e_iff_gradient']}, is the largest between a latent at ' E' and a latent "
                f"at 'iff', and the {_ordinal(facts['e_iff_cross_rank'])}-largest of the {facts['n_cross_position_pairs']} "
                f"cross-position gradients. The largest: {_pairs(facts['largest_cross_position'], l2l.layer_from, l2l.layer_to)}.",
                "The corpus was written to make this pair: it spells several words with a ' E' token, and puts 'iff' after "
                "other tokens too (' J|iff|y', ' G|iff|ard'), so that 'iff after E' is a distinction the model has to learn.",
                _other_e_word(facts, l2l),
                f"Of the 50 largest |gradients|, {facts['same_position_share_top50']:.0%} connect latents at the same position.",
                f"Of all the entries, {shares['causal']:.0%} are pairs the causal mask allows, {shares['nonzero']:.0%} are nonzero, and "
                f"{shares['large']:.1%} are above {facts['large_gradient_fraction']:.0%} of the largest |gradient|.",
                f"The layer-{l2l.layer_from} SAE is very sparse (L0 {quality[resid(l2l.layer_from)]['l0']:.1f}): this model uses rotary "
                "positions, so its layer-0 residual stream holds only the token's embedding.",
            ],
            "dashboards": [[resid(l2l.layer_from), facts["e_latent"]], [resid(l2l.layer_to), facts["iff_latent"]]],
        },
        "token_to_latent": {
            "observations": [
                f"F{token_layer}.{facts['iff_latent']} at 'iff' gets these gradients from the tokens up to it: "
                + ", ".join(f"{name} {value:+.4f}" for name, value in zip(token_names, iff_grads))
                + f"; the largest in size is {token_names[max(range(len(iff_grads)), key=lambda i: abs(iff_grads[i]))]}'s. "
                "The token view does not single out ' E'. That is no evidence against the bigram, nor for it: block 0's "
                "LayerNorm divides out the scale the probe multiplies, so the probe barely reaches what the first attention "
                "layer reads. The bigram shows in the latent-to-latent gradients, which this probe cannot test.",
                "Every token after a latent's position has a gradient of exactly zero to it (the plot's lower-left corner "
                "is empty): no latent reads a later token.",
            ],
        },
        "latent_to_logit": {
            "observations": [
                f"' Paris' is the top prediction with probability {facts['paris_prob']:.1%}; with the layer-{logit.layer} SAE "
                f"spliced in it is at rank {facts['paris_rank_with_sae'] + 1}.",
                f"Ask for the country instead ('The Eiffel tower is in the country of') and the top prediction is "
                f"{eiffel['country']['top']!r}, probability {eiffel['country']['probability']:.1%} "
                f"(the city prompt gives {eiffel['city']['top']!r}, {eiffel['city']['probability']:.1%}).",
                f"With the layer-{logit.layer} SAE spliced in, {quality[resid(logit.layer)]['top1_survival']:.0%} of the model's "
                f"top-1 predictions on held-out text survive (its reconstruction explains {quality[resid(logit.layer)]['fve']:.0%} of the variance).",
            ],
        },
        "attribution": {"observations": attribution_observations(facts, settings)},
        "latent_circuit": {"observations": circuit_observations(facts, settings)},
        "attention": {
            "observations": [
                f"Head {prev_head[0]}.{prev_head[1]} is the best previous-token head before layer {induction.layer_to} "
                f"(score {best_prev:.3f})"
                + (
                    f", but only just: {', '.join(f'{name} ({score:.3f})' for name, score in rivals.items())} score within "
                    f"{best_prev - min(rivals.values()):.3f} of it, so layer {induction.layer_from} is a choice, not the only "
                    "place a previous-token head lives. "
                    if rivals
                    else f": no other head comes within {RIVAL_MARGIN}. "
                )
                + f"Induction heads: {induction_heads}.",
                f"Mean |gradient| per cell inside the outlined induction cells is {mass['inside'] / mass['outside_causal']:.1f}x "
                "the mean over the cells outside them that the causal mask allows, and "
                f"{mass['inside'] / mass['outside']:.1f}x the mean over every cell outside them (causally zero ones included).",
                f"{facts['latents_on_every_repeated_token']} layer-{induction.layer_to} latent(s) fire on every token of the "
                f"second half; {len(second_half)} of them, {second_half}, also fire on at most half of the first-half tokens "
                "(where nothing has repeated yet): the induction latents. The others fire on more than half of the first-half "
                "tokens too: they read the tokens or their positions, not their repetition.",
                (
                    "The induction latents' control: "
                    + "; ".join(
                        f"{latent} fires on {c['first_half']} of the {induction.seq_len} first-half tokens, on "
                        f"{c['second_half']} of the {induction.seq_len} repeated ones, and on {c['fact_text_share']:.1%} of the "
                        "tokens of held-out fact text"
                        for latent, c in facts["induction_latent_control"].items()
                    )
                    + ". A pure induction latent would fire on the repeats and nowhere else; compare."
                    if second_half
                    else "No latent passes the control on this sequence."
                ),
                f"The layer-{induction.layer_from} latents with the largest gradients into them, from the first half: "
                f"{facts['prev_token_latents']} (their cards are below: do they fire on the token after a given one?).",
            ],
            "dashboards": [[get_act_name("z", induction.layer_to), latent] for latent in second_half]
            + [[get_act_name("z", induction.layer_from), latent] for latent in facts["prev_token_latents"]],
        },
    }


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _pairs(pairs: list[dict], layer_from: int, layer_to: int) -> str:
    return ", ".join(
        f"F{layer_from}.{p['from'][0]} on {p['from'][1]!r} ({p['from'][2]}) -> F{layer_to}.{p['to'][0]} on {p['to'][1]!r} "
        f"({p['to'][2]}), {p['gradient']:+.3f}"
        for p in pairs
    )


def _other_e_word(facts: dict[str, Any], l2l: Any) -> str:
    other = facts["other_e_word"]
    head = f"On another ' E' word the world knows, {other['prompt']!r}, "
    if not other.get("largest_latent") and not other["e_latent_active"]:
        return head + f"F{l2l.layer_from}.{facts['e_latent']} is not active at ' E'."
    return head + (
        f"F{l2l.layer_from}.{facts['e_latent']} at ' E' has its largest gradient, {other['largest_gradient']:+.3f}, to "
        f"F{l2l.layer_to}.{other['largest_latent']} on {other['next_token']!r}; F{l2l.layer_to}.{facts['iff_latent']} is "
        + ("active there too." if other["iff_latent_active"] else "not active there: the 'iff' latent is specific to 'Eiffel'.")
    )


def _world_observations(facts: dict[str, Any], settings: ExerciseSettings, rivals: dict[str, float], prev_head: list[int]) -> list[str]:
    """What the world was trained on, and which of the course's phenomena it reproduces, with their strengths."""
    training = facts["training"]
    quality = facts["sae_quality"]
    both = [name for name, row in facts["city_country"].items() if all(row[kind]["top"] == row[kind]["expected"] for kind in row)]
    eiffel = facts["city_country"]["Eiffel tower"]
    runs = training["induction_run_lengths"]
    l2l, induction = settings.latent_to_latent, settings.attention
    mass = facts["induction_rectangle_mass"]
    fves = [values["fve"] for values in quality.values()]
    return [
        "Trained on a corpus written for this course, to reproduce the phenomena below: short facts about "
        f"{len(training['landmarks'])} landmarks, their cities and countries, and, in {training['induction_fraction']:.0%} of "
        f"its {training['n_ctx']}-token training windows, runs of {runs[0]} to {runs[1]} random tokens from the facts' "
        "vocabulary, repeated (induction sequences).",
        "Landmarks (city, country): " + "; ".join(f"{landmark} ({city}, {country})" for landmark, city, country in training["landmarks"]) + ".",
        f"Reproduces: 'The Eiffel tower is in the city of' -> {eiffel['city']['top']!r} ({eiffel['city']['probability']:.1%}), "
        f"'... the country of' -> {eiffel['country']['top']!r} ({eiffel['country']['probability']:.1%}); "
        f"{len(both)} of the {len(facts['city_country'])} landmarks get both their city's and their country's first token top-1.",
        f"Reproduces: a cross-position (' E' -> 'iff') latent pair between layers {l2l.layer_from} and {l2l.layer_to}, gradient "
        f"{facts['e_iff_gradient']}, the {_ordinal(facts['e_iff_cross_rank'])}-largest cross-position gradient on its prompt "
        "(one pair among several).",
        f"Reproduces: a previous-token head ({prev_head[0]}.{prev_head[1]}, score {facts['prev_token_score']:.2f}) and "
        f"induction heads (best score {facts['induction_score']:.2f}); induction-cell gradients "
        f"{mass['inside'] / mass['outside_causal']:.1f}x the causally possible cells outside them; "
        f"{len(facts['induction_latents'])} layer-{induction.layer_to} induction latent(s) (on every repeated token, on at "
        f"most half the first-half ones) among {facts['latents_on_every_repeated_token']} on every repeated token.",
        f"Reproduces: SAEs that explain {min(fves):.0%} to {max(fves):.0%} of the variance at every layer.",
        "Does not reproduce: the token-side view of the bigram (the ' E' token's gradient to the 'iff' latent is no larger "
        "than any other token's; see exercise 4).",
        ("Reproduces" if facts["paris_rank_with_sae"] > 0 else "Does not reproduce")
        + f": the drop of ' Paris' under the spliced-in SAE (from rank 1 to 9 on GPT-2; to rank {facts['paris_rank_with_sae'] + 1} here).",
        (
            f"Does not reproduce: one clear previous-token head before the induction heads. Head {prev_head[0]}.{prev_head[1]} "
            f"is chosen, but {', '.join(f'{name} ({score:.2f})' for name, score in rivals.items())} score within {RIVAL_MARGIN} of it."
            if rivals
            else f"Reproduces: one clear previous-token head, {prev_head[0]}.{prev_head[1]}, with no other within {RIVAL_MARGIN}."
        ),
    ]


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
    layer0 = [row["zero"]["difference"] for row in rows if row["key"][0] == 0]
    later = [row["zero"]["difference"] for row in rows if row["key"][0] != 0]
    if layer0:
        smaller = sum(abs(estimate) < abs(effect) for estimate, effect in layer0)
        lines.append(
            f"Layer 0: for {sum(misses_fivefold_or_in_sign(pair) for pair in layer0)} of the {len(layer0)} layer-0 latents the "
            "zero-ablation estimate misses the effect by a factor of five or more, or in sign, against "
            f"{sum(misses_fivefold_or_in_sign(pair) for pair in later)} of the {len(later)} latents at later layers; for {smaller} of "
            f"the {len(layer0)} layer-0 latents the estimate is smaller in size than the effect. Zeroing a layer-0 latent removes "
            "much of its token, a larger step than the gradient describes."
        )
    return lines


def misses_fivefold_or_in_sign(pair: list[float]) -> bool:
    """Whether an (estimate, effect) pair differs in sign, or the effect is at least five times the estimate."""
    estimate, effect = pair
    return estimate * effect < 0 or abs(effect) >= 5 * abs(estimate)


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
                f"{ablation['circuit'][0]:.2f}, {ablation['circuit'][0] / clean[0]:.0%} of it "
                f"(the probability from {clean[1]:.4f} by {ablation['circuit'][1]:.4f}); the matched "
                f"control: {ablation['control_mean']:.2f} ± {ablation['control_std']:.2f} (mean ± standard deviation over "
                f"{ablation['draws']} draws); {ablation['control_beats']} draws do as well as the circuit."
            )
    return lines


def show_observations(world: World, exercise: str) -> None:
    """Show what this world shows in `exercise` (measured when the world was built), folded away.

    `exercise` is one of "world" (what the world is), "latent_to_latent", "token_to_latent", "latent_to_logit",
    "attribution", "attention", "latent_circuit". In
    Jupyter the observations are a collapsed section, opened with a click (so the learner can look at
    the plot first); as plain text (a console, a test) they are a list.
    """
    from html import escape

    from IPython.display import display

    observations = world.facts.get(exercise, {}).get("observations", [])
    if observations:
        measured = ", measured when it was built" if world.name == "toy" else ""
        summary = f"What the {world.name} world {'is' if exercise == 'world' else 'shows here'}{measured} (click to open)"
        text = "\n".join(f"• {line}" for line in observations)
        items = "".join(f"<li>{escape(line)}</li>" for line in observations)
        html = f"<details><summary><b>{escape(summary)}</b></summary><ul>{items}</ul></details>"
        display({"text/plain": text, "text/html": html}, raw=True)
    elif world.name == "gpt2":
        print("GPT-2's expected figures are in the notes above.")
    else:
        print(f"The {world.name} world has no recorded observations: its weights are random, so the pictures are noise.")
