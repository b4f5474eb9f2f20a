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


def plot_estimate_vs_effect(
    estimates: Float[Tensor, "n 2"], effects: Float[Tensor, "n 2"], labels: Sequence[str], metric: int = 0, title: str = ""
) -> go.Figure:
    """Each latent's first-order estimate (x) against the measured effect of its ablation (y), on one metric,
    with the line y = x where the estimate would be exact."""
    x, y = estimates[:, metric].tolist(), effects[:, metric].tolist()
    low, high = min([*x, *y, 0.0]), max([*x, *y, 0.0])
    name = METRIC_NAMES[metric]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", line={"dash": "dash", "color": "grey"}, name="y = x"))
    fig.add_trace(
        go.Scatter(
            x=x,
            y=y,
            mode="markers+text",
            text=list(labels),
            textposition="top center",
            marker={"size": 9},
            name="latents",
            hovertemplate="%{text}<br>estimate %{x:.4g}<br>effect %{y:.4g}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title or f"Is the attribution true? ({name})",
        xaxis_title=f"estimate: gradient x (activation - ablated value), {name}",
        yaxis_title=f"effect: clean - ablated, {name}",
        width=720,
        height=520,
    )
    return fig
