"""The offline toy world tells GPT-2's story: each observation of the spec, measured, with its figures printed.

The figures appear in the summary at the end of the run.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from transformer_lens.utilities import get_act_name

import solutions
from part_utils import toy_corpus
from part_utils import toy_world as tw
from part_utils.observations import RIVAL_MARGIN, misses_fivefold_or_in_sign
from part_utils.plots import gradient_shares, gradients_between_positions, induction_latents, induction_rectangle_masses, same_position_share, token_gradients_of_latent
from part_utils.tokenizer import GPT2_VOCAB_SIZE
from part_utils.world_types import AttentionSettings

pytestmark = [pytest.mark.toy_world, pytest.mark.slow]

# The world's data is tiny, so the same held-out documents the training script measured on are cheap.
EVAL_SEED = 12345
# Thresholds. SAE quality: an SAE explaining under 80% of the variance, or changing the model's
# top-1 prediction on more than 30% of tokens, would make the gradient pictures describe a different
# model than the one we claim to study. L0 between 1 and 64 (of 512 latents) is sparse enough for
# readable heatmaps; layer 0's input is just the token embedding (rotary positions live in the
# attention), so about one latent per token is the right answer there. Heads: a head scoring 0.5 puts half its
# attention on one specific position out of up to 21, ten times uniform attention.
MIN_FVE = 0.8
MIN_TOP1_SURVIVAL = 0.7
L0_RANGE = (1, 64)
MIN_HEAD_SCORE = 0.5
# The trained world's (" E" -> "iff") gradient is about 0.04; 0.02 is four orders of magnitude
# above float32 noise (~1e-6), so the pair is a real connection, not a rounding artefact.
MIN_E_IFF_GRADIENT = 0.02
MIN_RECTANGLE_RATIO = 3.0
# The notebook quotes world.json's facts (part_utils/observations.py); each test below re-measures the
# figure and holds it to the quoted value. The facts are rounded to 3-4 decimals when written, and the
# same weights give the same figures to ~1e-6 on any CPU, so these bounds are the rounding, doubled.
SCORE_TOLERANCE = 1e-3
GRADIENT_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def world():
    start = time.perf_counter()
    parts = tw.load_toy_world_parts("cpu")
    load_seconds = time.perf_counter() - start
    return (*parts, load_seconds)


def _sequences(settings: dict) -> AttentionSettings:
    """The attention exercise's settings, which draw its repeated random sequences."""
    return AttentionSettings.from_dict(settings["attention"])


def test_loads_quickly_as_real_classes(world, figures):
    model, resid_saes, attn_saes, settings, load_seconds = world
    figures.add("toy world", f"toy world loaded in {load_seconds:.2f} s")
    assert load_seconds < 2.0
    assert model.cfg.d_vocab == GPT2_VOCAB_SIZE and model.cfg.n_layers >= 6
    assert sorted(resid_saes) == sorted(attn_saes) == list(range(model.cfg.n_layers))
    for layer in range(model.cfg.n_layers):
        assert resid_saes[layer].cfg.metadata.hook_name == get_act_name("resid_pre", layer)
        assert attn_saes[layer].cfg.metadata.hook_name == get_act_name("z", layer)
        assert attn_saes[layer].cfg.reshape_activations == "hook_z"
    assert set(settings) >= {"latent_to_latent", "token_to_latent", "latent_to_logit", "attention", "facts"}


def test_paris_is_top1(world, figures):
    model, _, _, settings, _ = world
    logit_settings = settings["latent_to_logit"]
    logits = model(logit_settings["prompt"])[0, -1]
    top = logits.topk(3).indices.tolist()
    probs = logits.softmax(-1)
    figures.add("toy world", f"{logit_settings['prompt']!r} -> " + ", ".join(f"{model.to_string(t)!r} {probs[t]:.1%}" for t in top))
    assert model.to_string(top[0]) == logit_settings["answer"] == " Paris"
    assert abs(probs[top[0]].item() - settings["facts"]["paris_prob"]) < SCORE_TOLERANCE


def test_previous_token_and_induction_heads(world, figures):
    model, _, _, settings, _ = world
    attn = settings["attention"]
    tokens = _sequences(settings).repeated_tokens(model, EVAL_SEED, n_seqs=32)
    prev_scores, induction_scores = tw.head_scores(model, tokens, attn["seq_len"])
    for layer, head in attn["prev_token_heads"]:
        figures.add("toy world", f"previous-token head {layer}.{head}: score {prev_scores[layer, head]:.2f}")
        assert layer == attn["layer_from"]
    for layer, head in attn["induction_heads"]:
        figures.add("toy world", f"induction head {layer}.{head}: score {induction_scores[layer, head]:.2f}")
        assert layer == attn["layer_to"]
    assert max(prev_scores[layer, head] for layer, head in attn["prev_token_heads"]) > MIN_HEAD_SCORE
    facts = settings["facts"]
    # The notebook quotes every head's score (the chosen heads and their rivals): all as measured.
    assert torch.allclose(prev_scores, torch.tensor(facts["prev_token_scores"]), atol=SCORE_TOLERANCE)
    assert torch.allclose(induction_scores[1:], torch.tensor(facts["induction_scores"])[1:], atol=SCORE_TOLERANCE)
    best = max(attn["prev_token_heads"], key=lambda head: prev_scores[head[0], head[1]])
    rivals = [
        f"{layer}.{head} {prev_scores[layer, head]:.3f}"
        for layer in range(attn["layer_to"])
        for head in range(model.cfg.n_heads)
        if [layer, head] != list(best) and prev_scores[layer, head] >= prev_scores[best[0], best[1]] - RIVAL_MARGIN
    ]
    figures.add("toy world", f"previous-token heads within {RIVAL_MARGIN} of {best[0]}.{best[1]}: {', '.join(rivals) or 'none'}")
    assert max(induction_scores[layer, head] for layer, head in attn["induction_heads"]) > MIN_HEAD_SCORE


def test_every_sae_reconstructs_faithfully(world, figures):
    model, resid_saes, attn_saes, settings, _ = world
    batches = [
        tw.fact_token_batch(toy_corpus.corpus_texts(EVAL_SEED, 64), 32),
        _sequences(settings).repeated_tokens(model, EVAL_SEED, n_seqs=32),
    ]
    failures = []
    for sae in [*resid_saes.values(), *attn_saes.values()]:
        quality = tw.sae_quality(model, sae, batches)
        line = f"{sae.cfg.metadata.hook_name:26s} L0 {quality['l0']:5.1f}  FVE {quality['fve']:.3f}  top-1 kept {quality['top1_survival']:.3f}"
        figures.add("toy world", line)
        quoted = settings["facts"]["sae_quality"][sae.cfg.metadata.hook_name]
        if any(abs(quality[name] - quoted[name]) > SCORE_TOLERANCE for name in quoted):
            failures.append(f"{line}: world.json says {quoted}")
        good = (
            L0_RANGE[0] <= quality["l0"] <= L0_RANGE[1]
            and quality["fve"] > MIN_FVE
            and quality["top1_survival"] > MIN_TOP1_SURVIVAL
        )
        if not good:
            failures.append(line)
    assert not failures, "SAEs below the thresholds:\n" + "\n".join(failures)


def test_cross_token_latent_pair_from_E_to_iff(world, figures):
    model, resid_saes, _, settings, _ = world
    l2l, facts = settings["latent_to_latent"], settings["facts"]
    str_tokens = model.to_str_tokens(l2l["prompt"])
    e_pos, iff_pos = str_tokens.index(" E"), str_tokens.index("iff")
    gradients, prev, _, next_recon = solutions.latent_to_latent_gradients(
        model.to_tokens(l2l["prompt"]), resid_saes[l2l["layer_from"]], resid_saes[l2l["layer_to"]], model
    )
    gradients, from_ids, to_ids = gradients_between_positions(gradients, prev, next_recon, e_pos, iff_pos)
    to_index, from_index = divmod(gradients.abs().argmax().item(), gradients.shape[1])
    e_latent, iff_latent = from_ids[from_index].item(), to_ids[to_index].item()
    gradient = gradients[to_index, from_index].item()
    figures.add(
        "toy world",
        f"(F{l2l['layer_from']}.{e_latent}, ' E' ({e_pos})) -> (F{l2l['layer_to']}.{iff_latent}, 'iff' ({iff_pos})):"
        f" gradient {gradient:.4f}; {gradients.shape[1]} latents active at ' E', {gradients.shape[0]} at 'iff'"
    )
    assert abs(gradient) > MIN_E_IFF_GRADIENT
    assert (e_latent, iff_latent) == (facts["e_latent"], facts["iff_latent"]), "world.json's facts are stale"
    assert abs(gradient - facts["e_iff_gradient"]) < GRADIENT_TOLERANCE


def test_large_latent_gradients_stay_at_their_position(world, figures):
    """The notebook says most large latent-to-latent gradients connect latents at the same position."""
    model, resid_saes, _, settings, _ = world
    l2l, facts = settings["latent_to_latent"], settings["facts"]
    gradients, prev, _, next_recon = solutions.latent_to_latent_gradients(
        model.to_tokens(l2l["prompt"]), resid_saes[l2l["layer_from"]], resid_saes[l2l["layer_to"]], model
    )
    share = same_position_share(gradients, prev, next_recon, 50)
    figures.add("toy world", f"latent-to-latent: {share:.0%} of the 50 largest |gradients| connect latents at the same position")
    assert share > 0.5
    assert abs(share - facts["same_position_share_top50"]) < SCORE_TOLERANCE


def test_token_view_of_the_bigram(world, figures):
    """What the notebook says the token-to-latent plot shows for the bigram latent: measured, not asserted."""
    model, resid_saes, _, settings, _ = world
    token_settings, facts = settings["token_to_latent"], settings["facts"]
    tokens = model.to_tokens(token_settings["prompt"])
    iff_pos = model.to_str_tokens(token_settings["prompt"]).index("iff")
    sae = resid_saes[token_settings["layer"]]
    gradients = token_gradients_of_latent(*solutions.token_to_latent_gradients(tokens, sae, model), iff_pos, facts["iff_latent"])
    figures.add(
        "toy world",
        f"token -> F{token_settings['layer']}.{facts['iff_latent']} at 'iff': "
        + ", ".join(f"{model.to_string(tok)!r} {g:+.4f}" for tok, g in zip(tokens[0, : iff_pos + 1].tolist(), gradients.tolist())),
    )
    assert torch.allclose(gradients[: iff_pos + 1], torch.tensor(facts["iff_token_gradients"]), atol=GRADIENT_TOLERANCE)
    # "The token view does not single out ' E'": its gradient is not the largest in size.
    magnitudes = gradients[: iff_pos + 1].abs()
    e_pos = model.to_str_tokens(token_settings["prompt"]).index(" E")
    assert magnitudes[e_pos] < magnitudes.max()
    # Causality: a latent never reads a later token, so those gradients are exactly zero.
    assert torch.all(gradients[iff_pos + 1 :] == 0)


def test_induction_circuit_between_attention_saes(world, figures):
    model, _, attn_saes, settings, _ = world
    attn = settings["attention"]
    seq_len = attn["seq_len"]
    tokens = _sequences(settings).repeated_tokens(model, seed=0)
    gradients, prev, _, next_recon = solutions.latent_to_latent_gradients_attn(
        tokens, attn_saes[attn["layer_from"]], attn_saes[attn["layer_to"]], model
    )
    masses = induction_rectangle_masses(gradients, prev, next_recon, seq_len)
    ratio = masses["inside"] / masses["outside"]
    causal_ratio = masses["inside"] / masses["outside_causal"]
    figures.add(
        "toy world",
        f"layer {attn['layer_from']} -> {attn['layer_to']} attention SAEs: mean |gradient| per cell inside the induction"
        f" rectangles {masses['inside']:.4f}, outside {masses['outside']:.4f} ({ratio:.1f}x), outside but causally"
        f" possible {masses['outside_causal']:.4f} ({causal_ratio:.1f}x)"
    )
    assert ratio >= MIN_RECTANGLE_RATIO
    quoted = settings["facts"]["induction_rectangle_mass"]
    assert abs(ratio - quoted["inside"] / quoted["outside"]) < 0.05, "the notebook quotes the ratio to one decimal"
    assert abs(causal_ratio - quoted["inside"] / quoted["outside_causal"]) < 0.05


def test_induction_latents_fire_on_the_repeats_more_than_on_the_first_half(world, figures):
    """world.json's induction latents and its count of latents on every repeated token, measured again: a latent
    that fires on every repeated token is not an induction latent unless it also passes the first-half control."""
    model, _, attn_saes, settings, _ = world
    attn, facts = settings["attention"], settings["facts"]
    seq_len = attn["seq_len"]
    tokens = _sequences(settings).repeated_tokens(model, seed=0)
    _, _, next_true, _ = solutions.latent_to_latent_gradients_attn(tokens, attn_saes[attn["layer_from"]], attn_saes[attn["layer_to"]], model)
    active = next_true.dense[0] > 0
    on_every_repeat = active[seq_len + 1 :].all(0)
    first_half = active[1 : seq_len + 1].sum(0)
    figures.add(
        "toy world",
        f"layer-{attn['layer_to']} latents on every repeated token: {int(on_every_repeat.sum())}, of which also on every "
        f"first-half token: {int((on_every_repeat & (first_half == seq_len)).sum())}; induction latents {facts['induction_latents']}",
    )
    assert int(on_every_repeat.sum()) == facts["latents_on_every_repeated_token"]
    assert induction_latents(next_true, seq_len) == facts["induction_latents"]
    assert facts["induction_latents"], "the world has an induction latent for exercise 6's cards to show"
    for latent in facts["induction_latents"]:
        assert on_every_repeat[latent] and first_half[latent] <= seq_len // 2


def _training_script():
    """scripts/train_toy_world.py, whose measure functions wrote world.json's facts: the tests re-run them."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "train_toy_world.py"
    spec = importlib.util.spec_from_file_location("train_toy_world", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_city_and_country_are_both_top1(world, figures):
    """"... in the city of" -> the city, "... in the country of" -> the country, for every landmark, each top-1."""
    model, _, _, settings, _ = world
    measured = _training_script().city_country_predictions(model)
    eiffel = measured["Eiffel tower"]
    figures.add(
        "toy world",
        "city vs country, Eiffel tower: "
        + ", ".join(f"{kind} -> {row['top']!r} {row['probability']:.1%}" for kind, row in eiffel.items()),
    )
    wrong = [f"{name} ({kind}): {row[kind]['top']!r}, not {row[kind]['expected']!r}" for name, row in measured.items() for kind in row if row[kind]["top"] != row[kind]["expected"]]
    figures.add("toy world", f"city and country both top-1 for {len(measured) - len({w.split(' (')[0] for w in wrong})} of {len(measured)} landmarks")
    assert (eiffel["city"]["top"], eiffel["country"]["top"]) == (" Paris", " France")
    assert not wrong, wrong
    quoted = settings["facts"]["city_country"]
    for name, row in measured.items():
        for kind in row:
            assert abs(row[kind]["probability"] - quoted[name][kind]["probability"]) < SCORE_TOLERANCE, (name, kind)


def test_the_bigram_pair_on_this_prompt_and_on_another_E_word(world, figures):
    """Where the (" E" -> "iff") pair ranks among the prompt's cross-position gradients, and what the " E" latent
    drives on another " E" word: the figures the notebook quotes, re-measured."""
    model, resid_saes, _, settings, _ = world
    script, facts, l2l = _training_script(), settings["facts"], settings["latent_to_latent"]
    sae_from, sae_to = resid_saes[l2l["layer_from"]], resid_saes[l2l["layer_to"]]
    gradients, prev, _, next_recon = solutions.latent_to_latent_gradients(model.to_tokens(l2l["prompt"]), sae_from, sae_to, model)
    ranking = script.cross_position_ranking(model, gradients, prev, next_recon, facts["e_latent"], facts["iff_latent"])
    other = script.other_e_word(model, sae_from, sae_to, facts["e_latent"], facts["iff_latent"])
    shares = gradient_shares(gradients, prev, next_recon)
    figures.add(
        "toy world",
        f"(' E' -> 'iff') is cross-position gradient {ranking['e_iff_cross_rank']} of {ranking['n_cross_position_pairs']}; "
        f"largest {ranking['largest_cross_position'][0]}; on {other['prompt']!r}: {other}",
    )
    figures.add("toy world", "latent-to-latent entries: " + ", ".join(f"{name} {value:.1%}" for name, value in shares.items()))
    for name in ("e_iff_cross_rank", "n_cross_position_pairs"):
        assert ranking[name] == facts[name]
    assert [pair["from"] + pair["to"] for pair in ranking["largest_cross_position"]] == [
        pair["from"] + pair["to"] for pair in facts["largest_cross_position"]
    ]
    assert other == facts["other_e_word"] or all(
        abs(other[key] - facts["other_e_word"][key]) < GRADIENT_TOLERANCE if isinstance(other[key], float) else other[key] == facts["other_e_word"][key]
        for key in other
    )
    assert all(abs(shares[name] - facts["gradient_shares"][name]) < SCORE_TOLERANCE for name in shares)
    # The answer to exercise 3's question: the causal mask, not sparsity, sets the nonzero share; large gradients are few.
    assert abs(shares["nonzero"] - shares["causal"]) < 0.05 and shares["large"] < shares["causal"] / 2


def test_induction_latents_against_their_control(world, figures):
    """The induction latents fire on the repeats, and (the control) rarely on the first half or on fact text."""
    model, _, attn_saes, settings, _ = world
    attn, facts = settings["attention"], settings["facts"]
    sequence = _sequences(settings).repeated_tokens(model, seed=0)
    measured = _training_script().measure_induction_controls(
        model, attn_saes[attn["layer_from"]], attn_saes[attn["layer_to"]], sequence, facts["induction_latents"]
    )
    figures.add("toy world", f"induction latents' control: {measured['induction_latent_control']}; previous-token latents {measured['prev_token_latents']}")
    assert measured["prev_token_latents"] == facts["prev_token_latents"]
    for latent, control in measured["induction_latent_control"].items():
        quoted = facts["induction_latent_control"][latent]
        assert control["first_half"] == quoted["first_half"] and control["second_half"] == quoted["second_half"]
        assert abs(control["fact_text_share"] - quoted["fact_text_share"]) < SCORE_TOLERANCE


def test_paris_rank_with_the_sae_spliced_in(world, figures):
    model, resid_saes, _, settings, _ = world
    logit = settings["latent_to_logit"]
    rank, probability = _training_script().paris_rank(model, logit["prompt"], logit["answer"], [resid_saes[logit["layer"]]])
    figures.add("toy world", f"' Paris' with the layer-{logit['layer']} SAE spliced in: rank {rank + 1}, {probability:.1%}")
    assert rank == settings["facts"]["paris_rank_with_sae"]


def test_a_prompt_the_world_never_saw_gets_a_notice(capsys):
    from part_utils.worlds import load_world, note_unseen_tokens

    world = load_world("toy", device="cpu", verbose=False)
    capsys.readouterr()  # what loading printed
    note_unseen_tokens(world.model.to_str_tokens(world.exercises.latent_to_logit.prompt))
    assert capsys.readouterr().out == ""
    note_unseen_tokens(world.model.to_str_tokens("The quick brown fox"))
    notice = capsys.readouterr().out
    assert notice.count("\n") == 1 and "' quick'" in notice and repr(world.exercises.latent_to_logit.prompt) in notice


def test_a_check_on_a_prompt_the_world_never_saw_gets_the_notice(capsys):
    """A learner check given its own prompt says, in the same one line, when the world never saw its tokens."""
    from part_utils.worlds import load_world
    from tests._exercise import exercise_settings

    world = load_world("toy", device="cpu", verbose=False)
    capsys.readouterr()
    exercise_settings(world.model, "latent_to_logit", prompt=world.exercises.latent_to_logit.prompt)
    assert capsys.readouterr().out == ""
    exercise_settings(world.model, "latent_to_logit", prompt="The quick brown fox")
    notice = capsys.readouterr().out
    assert notice.count("\n") == 1 and "' quick'" in notice


def test_the_circuit_keeps_inhibitory_latents_and_error_nodes(world, figures):
    """The capstone keeps each layer's k latents of largest |contribution|, so a latent that pushes the answer down
    appears (drawn red: the node's colour is its contribution on a scale from -x to x, x the largest |contribution| of
    a latent or error node), and its graph has error nodes."""
    from part_utils.circuit import with_error_nodes
    from part_utils.circuit_plot import plot_circuit
    from solutions.latent_circuit import attribution, rank

    model, resid_saes, _, settings, _ = world
    logit = settings["latent_to_logit"]
    layers = sorted({settings["latent_to_latent"]["layer_from"], settings["latent_to_latent"]["layer_to"], logit["layer"]})
    tokens = model.to_tokens(logit["prompt"])
    target = model.to_single_token(logit["answer"])
    circuit = solutions.latent_circuit(tokens, resid_saes, model, layers, target, 4)
    ranking = rank(attribution(tokens, resid_saes, model, layers, target), 4)
    for layer, contributions, kept in zip(layers, ranking.contributions, ranking.kept):
        assert set(kept.tolist()) == set(contributions.abs().topk(len(kept)).indices.tolist())
        assert sorted(node.contribution for node in circuit.latents(layer)) == pytest.approx(sorted(contributions[kept].tolist()))
    inhibitory = [node for node in circuit.latents() if node.contribution < 0]
    assert inhibitory
    graph = with_error_nodes(circuit, tokens, resid_saes, model)
    assert graph.latents() == circuit.latents() and {node.layer for node in graph.errors()} <= set(layers) and graph.errors()
    figure = plot_circuit(graph, model.to_str_tokens(logit["prompt"]), logit["answer"])
    nodes = figure.data[-1]
    bound = max(abs(node.contribution) for node in graph.nodes if node.kind in ("latent", "error"))
    assert nodes.marker.cmin == -bound and nodes.marker.cmax == bound
    assert all(nodes.marker.color[graph.nodes.index(node)] < 0 for node in inhibitory)
    assert [symbol == "square" for symbol in nodes.marker.symbol] == [node.kind == "error" for node in graph.nodes]
    figures.add(
        "toy world",
        f"capstone circuit: {len(inhibitory)} of {len(circuit.latents())} kept latents inhibitory; {len(graph.errors())} error nodes "
        f"({', '.join(f'layer {node.layer} at {node.position}: {node.contribution:+.3f}' for node in graph.errors())})",
    )


def test_an_induction_latents_card_draws_its_contexts_from_repeated_text():
    """The offline card of an induction latent shows contexts where the token at its peak appeared before (the
    facts alone seldom repeat a token; the card also searches repeated runs, as the world was trained on)."""
    from part_utils.dashboard import top_contexts
    from part_utils.worlds import load_world

    world = load_world("toy", device="cpu", verbose=False)
    layer, latents = world.exercises.attention.layer_to, world.facts["attention"]["dashboards"]
    hook_name, latent = latents[0]
    assert hook_name.startswith(f"blocks.{layer}.")
    contexts = top_contexts(world, world.attn_saes[layer], latent)
    assert any(tokens[peak] in tokens[:peak] for tokens, _, peak in contexts)



# Exercise 5b and the capstone's faithfulness: world.json's facts, measured by the training script's own
# function, measured again. The same weights give the same figures to ~1e-6; facts are rounded to 4-6 decimals.
FACT_TOLERANCE = 2e-4


def _measure_attribution(model, resid_saes, settings: dict) -> dict:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "train_toy_world.py"
    spec = importlib.util.spec_from_file_location("train_toy_world", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    logit = settings["latent_to_logit"]
    layers = sorted({settings["latent_to_latent"]["layer_from"], settings["latent_to_latent"]["layer_to"], settings["token_to_latent"]["layer"], logit["layer"]})
    return script.measure_attribution(model, resid_saes, logit, layers)


def _assert_close(measured, quoted, where: str = "") -> None:
    if isinstance(quoted, dict):
        assert set(measured) == set(quoted), where
        for key in quoted:
            _assert_close(measured[key], quoted[key], f"{where}.{key}")
    elif isinstance(quoted, list):
        assert len(measured) == len(quoted), where
        for i, (m, q) in enumerate(zip(measured, quoted)):
            _assert_close(m, q, f"{where}[{i}]")
    elif isinstance(quoted, float):
        assert abs(measured - quoted) <= FACT_TOLERANCE, f"{where}: measured {measured}, quoted {quoted}"
    else:
        assert measured == quoted, f"{where}: measured {measured!r}, quoted {quoted!r}"


@pytest.fixture(scope="module")
def attribution(world):
    model, resid_saes, _, settings, _ = world
    return _measure_attribution(model, resid_saes, settings), settings["facts"]


def test_attribution_table_is_measured(attribution, figures):
    """The estimate-vs-effect table the notebook quotes (exercise 5b), re-measured: at least 8 latents, both ablations."""
    measured, facts = attribution
    rows = measured["attribution"]
    figures.add("toy world", "exercise 5b, logit difference ' Paris' - ' Rome': latent, zero-ablation estimate / effect, mean-ablation estimate / effect")
    for row in rows:
        layer, position, latent = row["key"]
        zero, mean = row["zero"]["difference"], row["mean"]["difference"]
        figures.add("toy world", f"  F{layer}.{latent} at {row['token']!r} ({row['source']}): {zero[0]:+.3f} / {zero[1]:+.3f}, {mean[0]:+.3f} / {mean[1]:+.3f}")
    assert len(rows) >= 8
    _assert_close(measured["attribution"], facts["attribution"], "attribution")
    # What the notebook reads from the table: the estimate furthest from its effect is a layer-0 latent's; the
    # estimate misses its effect fivefold or in sign for a larger share of the layer-0 latents than of the later
    # layers' (zeroing a layer-0 latent removes much of its token, a step the gradient does not describe); and every
    # layer-0 estimate is smaller in size than its effect. Shares, not a majority: the table holds only a few
    # layer-0 latents, and how many of them miss fivefold is not what the exercise teaches.
    layer0 = [row["zero"]["difference"] for row in rows if row["key"][0] == 0]
    later = [row["zero"]["difference"] for row in rows if row["key"][0] != 0]
    worst = max(rows, key=lambda row: abs(row["zero"]["difference"][1] - row["zero"]["difference"][0]))
    assert worst["key"][0] == 0
    layer0_misses = sum(misses_fivefold_or_in_sign(pair) for pair in layer0)
    later_misses = sum(misses_fivefold_or_in_sign(pair) for pair in later)
    figures.add("toy world", f"exercise 5b: misses fivefold or in sign, layer 0 {layer0_misses} of {len(layer0)}, later layers {later_misses} of {len(later)}")
    assert layer0_misses * len(later) > later_misses * len(layer0)
    assert all(abs(estimate) < abs(effect) for estimate, effect in layer0)


def test_circuit_completeness_and_faithfulness(attribution, figures):
    """The capstone's completeness per layer and its necessity and sufficiency against the matched control, with
    and without layer 0, re-measured; and what the notebook says of them."""
    measured, facts = attribution
    for layer, share in measured["circuit_completeness"].items():
        figures.add("toy world", f"capstone completeness, layer {layer}: kept {share['kept']:.1%}, all latents {share['all_latents']:.1%}, errors {share['errors']:.1%}")
        assert share["kept"] < share["all_latents"]
    for result in measured["circuit_faithfulness"]:
        for name in ("necessity", "sufficiency"):
            ablation = result[name]
            figures.add(
                "toy world",
                f"capstone {name}, layers {result['layers']}: logit difference {result['clean'][0]:.2f} drops by {ablation['circuit'][0]:.2f}; "
                f"matched control {ablation['control_mean']:.2f} ± {ablation['control_std']:.2f} ({ablation['draws']} draws, {ablation['control_beats']} beat the circuit)",
            )
        assert result["necessity"]["draws"] >= 20 and result["necessity"]["control_beats"] == 0
    with_layer0, without_layer0 = measured["circuit_faithfulness"]
    assert without_layer0["layers"] == [layer for layer in with_layer0["layers"] if layer != 0]
    # What the notebook says: necessary with and without layer 0 (above), and far more with it, since zeroing
    # layer-0 latents deletes tokens ("far": at least twice the drop). Not sufficient with or without layer 0:
    # keeping only the circuit loses more than half the logit difference, as the matched control does, though
    # no control draw loses as little.
    assert with_layer0["necessity"]["circuit"][0] > 2 * without_layer0["necessity"]["circuit"][0]
    for result in (with_layer0, without_layer0):
        assert result["sufficiency"]["circuit"][0] > result["clean"][0] / 2
        assert result["sufficiency"]["control_mean"] > result["clean"][0] / 2
        assert result["sufficiency"]["control_beats"] == 0
    _assert_close(measured["circuit_completeness"], facts["circuit_completeness"], "circuit_completeness")
    _assert_close(measured["circuit_faithfulness"], facts["circuit_faithfulness"], "circuit_faithfulness")
