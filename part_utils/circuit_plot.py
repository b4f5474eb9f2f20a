"""The capstone's picture: a circuit as an interactive layered graph (plotly, offline).

One column per layer: the tokens on the left, each SAE layer's latents and error nodes (squares) in the middle, the
target logit on the right. An edge's width is |weight| and its colour its sign (blue positive, red negative); a
node's colour is the sign of its contribution, so an inhibitory latent is red. Hovering a node shows
its latent, token and position, activation and contribution; a latent's label links to its Neuronpedia
dashboard (GPT-2, online) or to its offline card (`part_utils.dashboard`), shown in the same notebook.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from part_utils.circuit import Circuit, CircuitNode, NodeKey
from part_utils.dashboard import card_anchor
from part_utils.worlds import note_unseen_tokens

_POSITIVE, _NEGATIVE = "rgba(33,102,172,0.7)", "rgba(178,24,43,0.7)"
_MAX_EDGE_WIDTH = 8.0


def _label(node: CircuitNode, str_toks: Sequence[str], target: str) -> str:
    if node.kind == "token":
        return f"{str_toks[node.position]!r} ({node.position})"
    if node.kind == "logit":
        return f"logit {target!r}"
    if node.kind == "error":
        return f"error {node.layer}, {str_toks[node.position]!r} ({node.position})"
    return f"F{node.layer}.{node.index}, {str_toks[node.position]!r} ({node.position})"


def plot_circuit(
    circuit: Circuit,
    str_toks: Sequence[str],
    target: str,
    neuronpedia_ids: dict[int, str] | None = None,
    card_sae_ids: dict[int, str] | None = None,
) -> go.Figure:
    """The circuit as a layered graph. A latent's label links to its Neuronpedia dashboard when `neuronpedia_ids`
    maps its layer to a Neuronpedia id (e.g. "gpt2-small/9-res-jb"), else to its offline card in the same page
    when `card_sae_ids` maps its layer to the SAE's id (its hook name; show the cards with `display_dashboard`)."""
    note_unseen_tokens(str_toks)
    columns = ["token", *circuit.layers, "logit"]
    column_of = {"token": 0, "logit": len(columns) - 1} | {layer: i + 1 for i, layer in enumerate(circuit.layers)}
    position: dict[NodeKey, tuple[float, float]] = {}
    by_column: dict[int, list[CircuitNode]] = {}
    for node in circuit.nodes:
        column = column_of[node.layer if node.kind in ("latent", "error") else node.kind]
        by_column.setdefault(column, []).append(node)
    for column, nodes in by_column.items():
        if column not in (0, len(columns) - 1):
            nodes.sort(key=lambda n: -n.contribution)
        for row, node in enumerate(nodes):
            position[node.key] = (float(column), -(row - (len(nodes) - 1) / 2))

    figure = go.Figure()
    largest = max((abs(edge.weight) for edge in circuit.edges), default=1.0) or 1.0
    # The lines themselves take no hover (a node's hover would often land on an edge ending there): an invisible
    # marker at each edge's midpoint carries the edge's label instead.
    for edge in circuit.edges:
        (x0, y0), (x1, y1) = position[edge.source], position[edge.target]
        figure.add_trace(
            go.Scatter(
                x=[x0, x1],
                y=[y0, y1],
                mode="lines",
                line={"width": max(0.5, _MAX_EDGE_WIDTH * abs(edge.weight) / largest), "color": _POSITIVE if edge.weight > 0 else _NEGATIVE},
                hoverinfo="skip",
                showlegend=False,
            )
        )
    labels_of = {node.key: _label(node, str_toks, target) for node in circuit.nodes}
    figure.add_trace(
        go.Scatter(
            x=[(position[e.source][0] + position[e.target][0]) / 2 for e in circuit.edges],
            y=[(position[e.source][1] + position[e.target][1]) / 2 for e in circuit.edges],
            mode="markers",
            marker={"size": 8, "opacity": 0},
            hovertext=[f"{labels_of[e.source]} → {labels_of[e.target]}<br>weight {e.weight:+.4f}" for e in circuit.edges],
            hoverinfo="text",
            showlegend=False,
        )
    )
    nodes = list(circuit.nodes)
    labels = [_label(node, str_toks, target) for node in nodes]
    hover = [
        f"{label}<br>kind: {node.kind}"
        + (f", layer {node.layer}, latent {node.index}" if node.kind == "latent" else "")
        + (f", layer {node.layer}: the SAE's error at this position" if node.kind == "error" else "")
        + f"<br>activation {node.activation:.4f}<br>contribution to the logit {node.contribution:+.4f}"
        for label, node in zip(labels, nodes)
    ]
    online, offline = neuronpedia_ids or {}, card_sae_ids or {}
    # The colour scale spans the latents' and errors' contributions, so their signs show; the logit, far larger,
    # takes the scale's end.
    bound = max((abs(node.contribution) for node in nodes if node.kind in ("latent", "error")), default=1.0) or 1.0

    def linked(node: CircuitNode, label: str) -> str:
        if node.kind == "latent" and node.layer in online:
            return f'<a href="https://www.neuronpedia.org/{online[node.layer]}/{node.index}" target="_blank">{label}</a>'
        if node.kind == "latent" and node.layer in offline:
            return f'<a href="#{card_anchor(offline[node.layer], node.index)}" target="_self">{label}</a>'
        return label

    # Tokens' labels sit left of their column and the logit's right of it, where no edge runs. A latent's sits
    # above its node, where its edges converge: an annotation, whose white box keeps it legible over them (a
    # scatter's text has no background, and Chromium draws no text-shadow on SVG text).
    figure.add_trace(
        go.Scatter(
            x=[position[node.key][0] for node in nodes],
            y=[position[node.key][1] for node in nodes],
            mode="markers+text",
            text=["" if node.kind in ("latent", "error") else label for label, node in zip(labels, nodes)],
            textposition=["middle left" if node.kind == "token" else "middle right" for node in nodes],
            hovertext=hover,
            hoverinfo="text",
            marker={
                "size": 14,
                "symbol": ["square" if node.kind == "error" else "circle" for node in nodes],
                "color": [node.contribution for node in nodes],
                "colorscale": "RdBu",
                "cmin": -bound,
                "cmax": bound,
                "line": {"width": 1, "color": "black"},
            },
            showlegend=False,
        )
    )
    for label, node in zip(labels, nodes):
        if node.kind in ("latent", "error"):
            x, y = position[node.key]
            figure.add_annotation(x=x, y=y, yshift=16, text=linked(node, label), showarrow=False, bgcolor="rgba(255,255,255,0.85)", borderpad=1)
    names = ["tokens", *(f"layer {layer}" for layer in circuit.layers), "logit"]
    height = max(500, 60 * max(len(nodes) for nodes in by_column.values()))
    figure.update_layout(
        title=f"A circuit for {target!r}: edge width |gradient x activation|, blue positive, red negative; squares: SAE errors",
        xaxis={"tickvals": list(range(len(columns))), "ticktext": names, "showgrid": False, "zeroline": False, "range": [-0.9, len(columns) - 0.1]},
        yaxis={"visible": False},
        width=300 * len(columns) + 200,
        height=height,
        plot_bgcolor="white",
    )
    return figure
