"""Plots and latent cards: labels that name latent, token and position; the induction boxes in the right cells."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest
import torch

import solutions
from part_utils import plots
from part_utils.dashboard import latent_card_html, logit_effects
from solutions import SparseTensor


def sparse(entries: list[tuple[int, int, int]], shape=(1, 9, 4)) -> SparseTensor:
    dense = torch.zeros(shape)
    for index in entries:
        dense[index] = 1.0
    return SparseTensor.from_dense(dense)


@pytest.mark.attention
def test_induction_rectangles_cover_first_b_to_second_a() -> None:
    """seq_len 4: BOS A B C D A B C D; first B at p in 2..5 must meet second A at p + 3."""
    seq_len = 4
    prev = sparse([(0, p, 0) for p in range(9)])  # one earlier latent per position: row p is position p
    nxt = sparse([(0, p, 1) for p in range(9)])
    boxes = plots.induction_rectangles(prev.indices[:, 1], nxt.indices[:, 1], seq_len)
    assert boxes == [(p + 3, p + 4, p, p + 1) for p in range(2, 6)]

    gradients = torch.full((9, 9), 0.1)  # (next, prev): 0.1 everywhere, 1.0 in the induction cells
    for p in range(2, 6):
        gradients[p + 3, p] = 1.0
    masses = plots.induction_rectangle_masses(gradients, prev, nxt, seq_len)
    assert masses["inside"] / masses["outside"] == pytest.approx(10.0)
    assert masses["outside_causal"] == pytest.approx(0.1) and masses["outside"] == pytest.approx(0.1)


def test_gradient_shares_separate_the_causal_mask_from_large_gradients() -> None:
    """Three positions, one latent each: the causal mask allows 6 of 9 pairs; of those, one is large."""
    prev = sparse([(0, p, 0) for p in range(3)])
    nxt = sparse([(0, p, 1) for p in range(3)])
    gradients = torch.tensor([[1.0, 0.0, 0.0], [0.001, 0.002, 0.0], [0.003, 0.004, 0.005]])  # (next, prev)
    shares = plots.gradient_shares(gradients, prev, nxt, fraction=0.01)
    assert shares == pytest.approx({"causal": 6 / 9, "nonzero": 6 / 9, "large": 1 / 9})


def test_dense_output_basis_on_gpt2s_prompt() -> None:
    """The out-of-memory note's figure: GPT-2's prompt is 9 tokens with BOS, its residual SAEs 24,576 wide."""
    from part_utils.device import dense_output_basis
    from part_utils.gpt2_world import GPT2_EXERCISES, RESIDUAL_D_SAE
    from part_utils.tokenizer import gpt2_tokenizer

    n_positions = 1 + len(gpt2_tokenizer().encode(GPT2_EXERCISES.latent_to_latent.prompt))
    n_outputs, basis_bytes = dense_output_basis(n_positions, RESIDUAL_D_SAE)
    assert (n_positions, n_outputs) == (9, 221_184)
    assert round(basis_bytes / 1e9) == 196


@pytest.mark.latent_to_latent
def test_heatmaps_label_latent_token_and_position(tiny_world) -> None:
    model, settings = tiny_world.model, tiny_world.exercises.latent_to_latent
    tokens = model.to_tokens(settings.prompt)
    str_toks = model.to_str_tokens(settings.prompt)
    gradients, prev, _, recon = solutions.latent_to_latent_gradients(
        tokens, tiny_world.saes[settings.layer_from], tiny_world.saes[settings.layer_to], model
    )
    fig = plots.plot_latent_to_latent(gradients, prev, recon, str_toks, settings.layer_from, settings.layer_to, max_latents=None)
    heatmap = fig.data[0]
    assert isinstance(heatmap, go.Heatmap) and heatmap.z.shape == (len(prev.values), len(recon.values))
    _, position, latent = prev.indices[0].tolist()
    assert heatmap.y[0] == f"F{settings.layer_from}.{latent}, {str_toks[position]!r} ({position})"
    assert "%{x}" in heatmap.hovertemplate and "%{y}" in heatmap.hovertemplate and "%{z" in heatmap.hovertemplate
    assert fig.layout.xaxis.title.text == f"To layer {settings.layer_to}"


def test_a_wide_latent_to_latent_heatmap_shows_its_strongest_latents() -> None:
    """With more latents than `max_latents`, each axis keeps those of largest |gradient x earlier activation|,
    in position order, and every one of them is labelled."""
    prev = sparse([(0, p, 0) for p in range(9)])
    nxt = sparse([(0, p, 1) for p in range(9)])
    gradients = torch.full((9, 9), 0.01)  # (next, prev)
    gradients[7, 2], gradients[4, 5] = -3.0, 2.0
    str_toks = [f"t{p}" for p in range(9)]
    fig = plots.plot_latent_to_latent(gradients, prev, nxt, str_toks, 0, 3, max_latents=2)
    heatmap = fig.data[0]
    assert heatmap.z.tolist() == [[pytest.approx(0.01), -3.0], [2.0, pytest.approx(0.01)]]  # rows: earlier latents at 2 and 5; columns: later at 4 and 7
    assert list(heatmap.x) == ["F3.1, 't4' (4)", "F3.1, 't7' (7)"] and "2 of 9 earlier" in fig.layout.title.text
    assert fig.layout.xaxis.dtick == 1 and fig.layout.yaxis.dtick == 1
    assert plots.plot_latent_to_latent(gradients, prev, nxt, str_toks, 0, 3, max_latents=None).data[0].z.shape == (9, 9)


def test_a_latent_that_barely_fires_does_not_crowd_out_one_that_contributes() -> None:
    """The earlier latent at position 1 has the largest gradient but an activation of 0.01: its contribution is
    0.05 against 1.0 for the one at position 2, which the heatmap keeps. `select_by` chooses by another Jacobian."""
    prev = SparseTensor.from_dense(torch.tensor([[[1.0], [0.01], [1.0]]]))
    nxt = sparse([(0, 2, 0)], shape=(1, 3, 1))
    gradients = torch.tensor([[0.1, 5.0, 1.0]])  # (next, prev)
    str_toks = ["a", "b", "c"]
    shown = plots.plot_latent_to_latent(gradients, prev, nxt, str_toks, 0, 1, max_latents=1).data[0].y
    assert list(shown) == ["F0.0, 'c' (2)"]
    other = torch.tensor([[9.0, 0.0, 0.0]])
    assert list(plots.plot_latent_to_latent(gradients, prev, nxt, str_toks, 0, 1, max_latents=1, select_by=other).data[0].y) == ["F0.0, 'a' (0)"]


@pytest.mark.attention
def test_the_induction_heatmap_outlines_the_induction_cells_among_the_latents_it_shows() -> None:
    """seq_len 4, two earlier latents per position of which one is faint: with `max_latents` = 9 the faint
    ones are left out, and each box still covers the induction cells (earlier at p, later at p + 3)."""
    seq_len = 4
    dense = torch.zeros(1, 9, 2)
    dense[0, :, 0], dense[0, :, 1] = 1.0, 0.001
    prev = SparseTensor.from_dense(dense)  # rows 2p (strong) and 2p + 1 (faint) are position p
    nxt = sparse([(0, p, 0) for p in range(9)], shape=(1, 9, 1))
    gradients = torch.full((9, 18), 0.1)
    for p in range(2, 6):
        gradients[p + 3, 2 * p] = 1.0
    fig = plots.plot_induction(gradients, prev, nxt, [f"t{p}" for p in range(9)], 0, 1, seq_len, max_latents=9)
    assert list(fig.data[0].y) == [f"F0.0, 't{p}' ({p})" for p in range(9)]
    z = fig.data[0].z
    boxed = {(round(shape.y0 + 0.5), round(shape.x0 + 0.5)) for shape in fig.layout.shapes}
    assert boxed == {(p, p + 3) for p in range(2, 6)} and all(z[row][column] == 1.0 for row, column in boxed)


@pytest.mark.attention
def test_the_filtered_induction_heatmap_keeps_the_earlier_latents_that_contribute() -> None:
    """seq_len 2: latent 0 of the later layer fires on both repeated tokens (3 and 4). Of the four earlier latents on
    the first half, the faint ones (activation 0.01) have the larger gradients but the smaller contributions."""
    dense = torch.zeros(1, 5, 2)
    dense[0, 1:3, 0], dense[0, 1:3, 1] = 1.0, 0.01
    prev = SparseTensor.from_dense(dense)  # rows: (1, 0), (1, 1), (2, 0), (2, 1)
    nxt = sparse([(0, 3, 0), (0, 4, 0)], shape=(1, 5, 1))
    gradients = torch.tensor([[0.5, 2.0, 0.1, 3.0], [0.2, 4.0, 0.6, 1.0]])
    fig = plots.plot_induction_filtered(gradients, prev, nxt, [f"t{p}" for p in range(5)], 0, 1, 2, max_latents=2)
    assert list(fig.data[0].x) == ["F0.0, 't1' (1)", "F0.0, 't2' (2)"] and "2 of 4 earlier latents" in fig.layout.title.text
    assert fig.data[0].z.tolist() == [[0.5, pytest.approx(0.1)], [pytest.approx(0.2), pytest.approx(0.6)]]  # float32 values


@pytest.mark.attention
def test_an_induction_latent_fires_on_the_repeats_and_on_at_most_half_the_first_half() -> None:
    """seq_len 4, positions 1-4 the first half, 5-8 the repeat. Latent 0 fires on every repeat and on 2 of the 4
    first-half tokens (kept); latent 1 on every token of both halves (it reads the tokens, not their repetition);
    latent 2 on 3 of the 4 first-half tokens (more than half); latent 3 on 3 of the 4 repeats only."""
    repeats = range(5, 9)
    active = [(0, p, 0) for p in (1, 2, *repeats)] + [(0, p, 1) for p in range(1, 9)]
    active += [(0, p, 2) for p in (1, 2, 3, *repeats)] + [(0, p, 3) for p in (5, 6, 7)]
    assert plots.induction_latents(sparse(active, shape=(1, 9, 4)), 4) == [0]


def test_the_token_heatmap_keeps_the_latents_with_the_largest_gradients() -> None:
    acts = sparse([(0, p, 0) for p in range(3)], shape=(1, 3, 1))
    gradients = torch.tensor([[[0.1, 0.0, 0.0], [0.0, -2.0, 0.0], [0.0, 0.3, 1.0]]])  # (batch, token, latent)
    fig = plots.plot_token_to_latent(gradients, acts, ["a", "b", "c"], 3, max_latents=2)
    assert list(fig.data[0].x) == ["F3.0, 'b' (1)", "F3.0, 'c' (2)"] and "2 of 3 latents" in fig.layout.title.text
    assert len(plots.plot_token_to_latent(gradients, acts, ["a", "b", "c"], 3, max_latents=None).data[0].x) == 3


def test_the_estimate_scatter_writes_a_few_labels_that_do_not_overlap() -> None:
    """Thirty points crowd the origin and three lie far from it: the far ones are labelled, at most
    `max_labels` labels are written, no two of their boxes overlap, and every point keeps its label on hover."""
    from part_utils.attribution import _label_places, plot_estimate_vs_effect

    generator = torch.Generator().manual_seed(0)
    crowd = torch.randn(30, 2, generator=generator) * 0.01
    far = torch.tensor([[5.0, 6.0], [-3.0, -1.0], [4.0, -2.0]])
    estimates = torch.cat([crowd, far])
    effects = estimates.flip(0)  # the effects of the same 33 points, in a different order
    labels = [f"F4.{i}@' token'" for i in range(33)]
    fig = plot_estimate_vs_effect(estimates, effects, labels, max_labels=5)
    points = fig.data[1]
    written = [i for i, text in enumerate(points.text) if text]
    assert 1 <= len(written) <= 5 and list(points.hovertext) == labels
    x, y = estimates[:, 0].tolist(), effects[:, 0].tolist()
    farthest = max(range(33), key=lambda i: max(abs(x[i]), abs(y[i])))
    assert farthest in written
    axis_range = tuple(fig.layout.xaxis.range)
    places = _label_places(x, y, labels, axis_range, axis_range, 5)
    assert sorted(places) == written and all(points.textposition[i] == place for i, (place, _) in places.items())
    boxes = [box for _, box in places.values()]
    for i, (left, right, top, bottom) in enumerate(boxes):
        assert all(right <= b[0] or b[1] <= left or bottom <= b[2] or b[3] <= top for b in boxes[i + 1 :])


def test_latent_to_logit_plot_takes_every_logit(tiny_world) -> None:
    """With k=None there are no token ids: the plot shows the logits that respond most, labelled by token."""
    model, settings = tiny_world.model, tiny_world.exercises.latent_to_logit
    tokens = model.to_tokens(settings.prompt)
    sae = tiny_world.saes[settings.layer]
    *_, acts = solutions.latent_to_logit_gradients(tokens, sae, model, k=1)
    every_logit, _ = torch.func.jacfwd(solutions.latent_acts_to_logits, has_aux=True)(*acts.sparse, sae, model, None)
    fig = plots.plot_latent_to_logit(every_logit[0], acts, None, model.to_str_tokens(settings.prompt), settings.layer, model, max_logits=7, max_latents=None)
    heatmap = fig.data[0]
    strongest = every_logit[0].abs().amax(dim=1).argmax().item()
    assert heatmap.z.shape == (7, len(acts.values))
    assert heatmap.y[0] == f"{model.to_single_str_token(strongest)!r} ({strongest})"
    assert f"of all {model.cfg.d_vocab} logits" in fig.layout.title.text


def test_latent_to_logit_plot_shows_the_largest_contributions_with_their_layer(tiny_world) -> None:
    """By default the columns are the latents with the largest |gradient x activation| on the top logit, labelled F{layer}."""
    model, settings = tiny_world.model, tiny_world.exercises.latent_to_logit
    tokens = model.to_tokens(settings.prompt)
    gradients, _, _, token_ids, acts = solutions.latent_to_logit_gradients(tokens, tiny_world.saes[settings.layer], model, k=3)
    str_toks = model.to_str_tokens(settings.prompt)
    fig = plots.plot_latent_to_logit(gradients, acts, token_ids, str_toks, settings.layer, model, contributions=True, max_latents=2)
    contribution = gradients[0] * acts.values
    largest = contribution.abs().argmax().item()
    _, pos, latent = acts.indices[largest].tolist()
    assert fig.data[0].z.shape == (3, 2)
    assert fig.data[0].x[0] == f"F{settings.layer}.{latent}, {str_toks[pos]!r} ({pos})"
    assert fig.data[0].z[0][0] == pytest.approx(contribution[largest].item(), abs=1e-6)


@pytest.mark.worlds
def test_latent_card_shows_logit_effects_offline(tiny_world) -> None:
    boosted, suppressed = logit_effects(tiny_world, tiny_world.saes[0], latent_idx=3, k=5)
    assert len(boosted) == len(suppressed) == 5
    assert boosted[0][1] >= boosted[-1][1] and suppressed[0][1] <= suppressed[-1][1]
    html = latent_card_html(tiny_world, "blocks.0.hook_resid_pre", 3)
    assert 'class="latent-card"' in html and "Boosts" in html and "Suppresses" in html


@pytest.mark.latent_circuit
def test_circuit_graph_columns_edges_and_links(tiny_world) -> None:
    """One column per layer (tokens left, logit right); edge width follows |weight| and colour its sign; hover names
    the latent and position; a latent's label links to its offline card, or to Neuronpedia when given an id."""
    from part_utils.circuit_plot import plot_circuit
    from part_utils.dashboard import card_anchor

    model, settings = tiny_world.model, tiny_world.exercises.latent_circuit
    tokens = model.to_tokens(settings.prompt)
    str_toks = model.to_str_tokens(settings.prompt)
    target = int(model(tokens)[0, -1].argmax())
    circuit = solutions.latent_circuit(tokens, tiny_world.saes, model, settings.layers, target, settings.k)
    hook_names = {layer: tiny_world.saes[layer].cfg.metadata.hook_name for layer in settings.layers}
    fig = plot_circuit(circuit, str_toks, "x", card_sae_ids=hook_names)
    *edges, midpoints, nodes = fig.data
    assert len(edges) == len(circuit.edges) == len(midpoints.x) and len(nodes.x) == len(circuit.nodes)
    assert all(edge.hoverinfo == "skip" for edge in edges) and "weight" in midpoints.hovertext[0]
    assert list(fig.layout.xaxis.ticktext) == ["tokens", *(f"layer {layer}" for layer in settings.layers), "logit"]
    columns = dict(zip((n.key for n in circuit.nodes), nodes.x))
    assert {columns[n.key] for n in circuit.nodes if n.kind == "token"} == {0} and columns[circuit.nodes[-1].key] == len(settings.layers) + 1
    strongest = max(range(len(edges)), key=lambda i: abs(circuit.edges[i].weight))
    assert edges[strongest].line.width == max(edge.line.width for edge in edges)
    assert all((edge.line.color.startswith("rgba(33")) == (e.weight > 0) for edge, e in zip(edges, circuit.edges))
    latent = next(i for i, n in enumerate(circuit.nodes) if n.kind == "latent")
    node = circuit.nodes[latent]
    assert f"layer {node.layer}, latent {node.index}" in nodes.hovertext[latent] and f"({node.position})" in nodes.hovertext[latent]
    # A latent's label is an annotation above its node (a white box over the edges), tokens' and the logit's the nodes' text.
    labels = {(a.x, a.y): a.text for a in fig.layout.annotations}
    assert len(labels) == len(circuit.latents()) and not nodes.text[latent] and nodes.text[0] == f"{str_toks[0]!r} (0)"
    assert f'href="#{card_anchor(hook_names[node.layer], node.index)}"' in labels[nodes.x[latent], nodes.y[latent]]
    assert f'id="{card_anchor(hook_names[node.layer], node.index)}"' in latent_card_html(tiny_world, hook_names[node.layer], node.index)
    online = plot_circuit(circuit, str_toks, "x", neuronpedia_ids={node.layer: "gpt2-small/0-res-jb"}).layout.annotations
    assert f"https://www.neuronpedia.org/gpt2-small/0-res-jb/{node.index}" in online[0].text
