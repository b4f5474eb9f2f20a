"""Metrics for one prediction, the mean activations mean-ablation sets a latent to, and the plot that
puts a first-order estimate (gradient x activation) beside the measured effect of the ablation it estimates.

The metrics are those of the world's latent-to-logit settings: the **logit difference** between the
answer and a contrast answer of the same kind, and the answer's **probability**. A raw logit is not a
metric: adding one constant to every logit changes no probability and no prediction, so a change in one
logit alone says nothing about what the model predicts.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
import torch
from jaxtyping import Float
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor

from part_utils.hooks import _get_hook_layer

METRIC_NAMES = ("logit difference", "probability")


def answer_metrics(logits: Float[Tensor, "... d_vocab"], answer_id: int, contrast_id: int) -> Float[Tensor, "... 2"]:
    """(logit[answer] - logit[contrast], softmax(logits)[answer]) along the last axis."""
    logit_difference = logits[..., answer_id] - logits[..., contrast_id]
    return torch.stack([logit_difference, logits.softmax(-1)[..., answer_id]], dim=-1)


@torch.no_grad()
def mean_latent_acts(prompts: Sequence[str], sae: SAE, model: HookedSAETransformer) -> Float[Tensor, " d_sae"]:
    """Each latent's mean activation over every token of `prompts` but their BOS (whose residual stream is
    unlike any other token's), with the SAE encoding the clean residual stream.

    The prompts run as one batch, padded on the right: attention is causal, so the padding changes no
    earlier token, and it is left out of the mean."""
    hook_name = sae.cfg.metadata.hook_name
    lengths = torch.tensor([model.to_tokens(prompt).shape[1] for prompt in prompts], device=model.cfg.device)
    tokens = model.to_tokens(list(prompts), padding_side="right")
    _, cache = model.run_with_cache(tokens, names_filter=[hook_name], stop_at_layer=_get_hook_layer(sae) + 1)
    positions = torch.arange(tokens.shape[1], device=tokens.device)
    counted = (positions[None] >= 1) & (positions[None] < lengths[:, None])
    acts = sae.encode(cache[hook_name])
    return (acts * counted[..., None]).sum((0, 1)) / counted.sum()


# The scatter's geometry, fixed so that a label's place in pixels is known before plotly draws it.
_SCATTER_SIZE = (720, 520)
_SCATTER_MARGIN = {"l": 80, "r": 30, "t": 60, "b": 70}
_LABEL_FONT_PX, _LABEL_CHAR_PX, _MARKER_PX = 12, 7, 9
# Where a label may go beside its point, in the order tried: plotly's name, and the offset of the
# label box's centre from the point, in units of (label width / 2 + gap, label height / 2 + gap).
_LABEL_PLACES = {"top center": (0, -1), "bottom center": (0, 1), "middle right": (1, 0), "middle left": (-1, 0)}


def _label_places(
    x: list[float], y: list[float], labels: Sequence[str], x_range: tuple[float, float], y_range: tuple[float, float], max_labels: int
) -> dict[int, tuple[str, tuple[float, float, float, float]]]:
    """Which points get their label written, where, and the label's box (left, right, top, bottom, in the plot's
    pixels): the points furthest from the origin (largest |x| or |y|) first, each at the first place beside it
    where its label covers no marker and no label already placed and stays inside the plot; at most `max_labels`."""
    width = _SCATTER_SIZE[0] - _SCATTER_MARGIN["l"] - _SCATTER_MARGIN["r"]
    height = _SCATTER_SIZE[1] - _SCATTER_MARGIN["t"] - _SCATTER_MARGIN["b"]
    points = [
        ((xi - x_range[0]) / (x_range[1] - x_range[0]) * width, (y_range[1] - yi) / (y_range[1] - y_range[0]) * height) for xi, yi in zip(x, y)
    ]
    marker = _MARKER_PX / 2 + 1
    boxes = [(px - marker, px + marker, py - marker, py + marker) for px, py in points]
    placed: dict[int, tuple[str, tuple[float, float, float, float]]] = {}
    for i in sorted(range(len(x)), key=lambda i: -max(abs(x[i]), abs(y[i]))):
        if len(placed) == max_labels:
            break
        if not labels[i]:
            continue
        px, py = points[i]
        half_w, half_h = len(labels[i]) * _LABEL_CHAR_PX / 2, _LABEL_FONT_PX * 0.7
        for place, (dx, dy) in _LABEL_PLACES.items():
            cx, cy = px + dx * (half_w + marker + 1), py + dy * (half_h + marker + 1)
            box = (cx - half_w, cx + half_w, cy - half_h, cy + half_h)
            inside = box[0] >= 0 and box[1] <= width and box[2] >= 0 and box[3] <= height
            if inside and not any(box[0] < b[1] and b[0] < box[1] and box[2] < b[3] and b[2] < box[3] for b in boxes):
                placed[i], boxes = (place, box), [*boxes, box]
                break
    return placed


def plot_estimate_vs_effect(
    estimates: Float[Tensor, "n 2"],
    effects: Float[Tensor, "n 2"],
    labels: Sequence[str],
    metric: int = 0,
    title: str = "",
    max_labels: int = 6,
) -> go.Figure:
    """Each latent's first-order estimate (x) against the measured effect of its ablation (y), on one metric,
    with the line y = x where the estimate would be exact.

    Hovering over a point shows its label. At most `max_labels` labels are written on the plot: those of the
    points furthest from the origin, each where it overlaps no other written label (see `_label_places`)."""
    x, y = estimates[:, metric].tolist(), effects[:, metric].tolist()
    low, high = min([*x, *y, 0.0]), max([*x, *y, 0.0])
    pad = 0.08 * (high - low or 1.0)
    axis_range = (low - pad, high + pad)
    places = _label_places(x, y, labels, axis_range, axis_range, max_labels)
    name = METRIC_NAMES[metric]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", line={"dash": "dash", "color": "grey"}, name="y = x"))
    fig.add_trace(
        go.Scatter(
            x=x,
            y=y,
            mode="markers+text",
            text=[labels[i] if i in places else "" for i in range(len(x))],
            textposition=[places[i][0] if i in places else "top center" for i in range(len(x))],
            textfont={"size": _LABEL_FONT_PX},
            hovertext=list(labels),
            marker={"size": _MARKER_PX},
            name="latents",
            hovertemplate="%{hovertext}<br>estimate %{x:.4g}<br>effect %{y:.4g}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title or f"Is the attribution true? ({name})",
        xaxis={"title": {"text": f"estimate: gradient x (activation - ablated value), {name}"}, "range": list(axis_range), "automargin": False},
        yaxis={"title": {"text": f"effect: clean - ablated, {name}"}, "range": list(axis_range), "automargin": False},
        width=_SCATTER_SIZE[0],
        height=_SCATTER_SIZE[1],
        margin=_SCATTER_MARGIN,
        # Above the plot, right of the title, where it covers no point.
        legend={"orientation": "h", "x": 1.0, "xanchor": "right", "y": 1.01, "yanchor": "bottom"},
    )
    return fig
