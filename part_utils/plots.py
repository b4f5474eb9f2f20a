"""The course's pictures: gradient heatmaps (plotly) and attention patterns (circuitsvis), all offline.

Every heatmap labels its rows and columns as `F{layer}.{latent}, 'token' (position)`, and its hover
box names the latent, the token and the position on both axes, with the gradient's value.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import circuitsvis as cv
import numpy as np
import plotly.graph_objects as go
import torch
from IPython.display import HTML, display
from torch import Tensor

from part_utils.worlds import note_unseen_tokens

# Diverging colours centred on zero: red for negative gradients, blue for positive.
_SCALE = "RdBu"


def _latent_labels(indices: Tensor, str_toks: Sequence[str], layer: int | str) -> list[str]:
    """`F3.1234, ' Paris' (7)` for each (batch, position, latent) row of `indices`."""
    return [f"F{layer}.{latent}, {str_toks[pos]!r} ({pos})" for _, pos, latent in indices.tolist()]


# Pixels per heatmap row and per column. At the 12 px font no two labels touch: rows' labels are
# horizontal, columns' are slanted at 60 degrees, so their spacing across the text is 18 sin 60 = 15.6 px.
_ROW_PX, _COLUMN_PX = 16, 18
# Room for one label character, to size the margins the labels need.
_CHAR_PX = 7
# Beyond this many pixels a heatmap stops growing, and plotly labels every few rows or columns.
_MAX_PLOT_PX = 1600
# The title and subtitle above the plot; the colour bar to its right; the axis titles beside the labels.
_TOP_PX, _RIGHT_PX, _AXIS_TITLE_PX = 110, 120, 50


def _heatmap(
    z: Tensor,
    x: list[str],
    y: list[str],
    x_title: str,
    y_title: str,
    title: str,
    value_name: str = "gradient",
    row_px: int = _ROW_PX,
) -> go.Figure:
    """A heatmap of z with one labelled column per x and one row per y, each given room for its label.

    The margins are sized from the longest labels, so the plot area (and each cell) is as computed here."""
    values = z.detach().float().cpu().numpy().round(6)
    bound = float(np.abs(values).max()) if values.size else 1.0
    plot_width = min(_MAX_PLOT_PX, max(300, len(x) * _COLUMN_PX))
    # At least as tall as the y axis's title, which runs along it.
    plot_height = min(_MAX_PLOT_PX, max(200, len(y) * row_px, len(y_title) * _CHAR_PX))
    longest_x, longest_y = max(map(len, x), default=0), max(map(len, y), default=0)
    margin = {
        "l": longest_y * _CHAR_PX + _AXIS_TITLE_PX,
        "r": _RIGHT_PX,
        "t": _TOP_PX,
        "b": int(longest_x * _CHAR_PX * np.sin(np.radians(60))) + _AXIS_TITLE_PX,
    }
    # Each label names a latent (or token) and its position, so labels are unique and can serve as
    # categorical axes; the hover box repeats them next to the value.
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=x,
            y=y,
            hovertemplate=f"{x_title}: %{{x}}<br>{y_title}: %{{y}}<br>{value_name}: %{{z:.4g}}<extra></extra>",
            colorscale=_SCALE,
            zmid=0.0,
            zmin=-bound or -1.0,
            zmax=bound or 1.0,
            colorbar={"title": {"text": value_name}},
        )
    )
    fig.update_layout(
        title=title,
        width=plot_width + margin["l"] + margin["r"],
        height=plot_height + margin["t"] + margin["b"],
        margin=margin,
        font={"size": 12},
        xaxis={"title": {"text": x_title}, "type": "category", "tickangle": -60, "automargin": True, **_every_label(len(x), plot_width, _COLUMN_PX)},
        yaxis={"title": {"text": y_title}, "type": "category", "autorange": "reversed", "automargin": True, **_every_label(len(y), plot_height, row_px)},
    )
    return fig


def _every_label(n: int, plot_px: int, label_px: int) -> dict[str, Any]:
    """Label every row (column) when each has room for its label; otherwise plotly labels every few."""
    return {"tickmode": "linear", "dtick": 1} if n and plot_px / n >= label_px else {}


def strongest(magnitudes: Tensor, max_latents: int | None, in_position_order: bool = True) -> Tensor:
    """The indices of the `max_latents` largest magnitudes (all when None).

    In their original order when `in_position_order` (a SparseTensor's latents are sorted by position),
    else largest first. Every heatmap of latents chooses its rows and columns with this."""
    order = magnitudes.argsort(descending=True, stable=True)
    if max_latents is not None:
        order = order[:max_latents]
    return order.sort().values if in_position_order else order


def latent_to_latent_selection(gradients: Tensor, earlier_values: Tensor, max_latents: int | None) -> tuple[Tensor, Tensor]:
    """(later, earlier): the rows and columns of a latent-to-latent Jacobian a heatmap shows, in position order.

    Each is the `max_latents` latents with the largest |contribution| (gradient x the earlier latent's value,
    `earlier_values`) to or from any latent on the other side; None keeps every one."""
    n_later, n_earlier = gradients.shape
    contribution = (gradients.detach() * earlier_values[None, :]).abs()
    later = contribution.amax(dim=1) if n_earlier else torch.zeros(n_later)
    earlier = contribution.amax(dim=0) if n_later else torch.zeros(n_earlier)
    return strongest(later, max_latents), strongest(earlier, max_latents)


def _shown(n_shown: int, n_all: int, what: str) -> str:
    return f"all {n_all} {what}" if n_shown == n_all else f"{n_shown} of {n_all} {what}"


def plot_latent_to_latent(
    gradients: Tensor,
    latent_acts_prev: Any,
    latent_acts_next_recon: Any,
    str_toks: Sequence[str],
    layer_from: int,
    layer_to: int,
    title_suffix: str = "",
    max_latents: int | None = 80,
    select_by: Tensor | None = None,
) -> go.Figure:
    """Heatmap of d(later latent)/d(earlier latent): earlier latents down the side, later ones along the top.

    On each axis, the `max_latents` latents with the largest |gradient x earlier activation| to or from the
    other axis are shown, in position order (so the causal staircase and same-position blocks stay where
    they are); `max_latents=None` shows every active latent. `select_by`, a Jacobian between the same
    latents, chooses them instead of `gradients`, so that two heatmaps show the same latents."""
    note_unseen_tokens(str_toks)
    columns, rows = latent_to_latent_selection(gradients if select_by is None else select_by, latent_acts_prev.values, max_latents)
    x = _latent_labels(latent_acts_next_recon.indices[columns], str_toks, layer_to)
    y = _latent_labels(latent_acts_prev.indices[rows], str_toks, layer_from)
    every = len(x) == gradients.shape[0] and len(y) == gradients.shape[1]
    shown = (
        f"{_shown(len(y), gradients.shape[1], 'earlier')} and {_shown(len(x), gradients.shape[0], 'later latents')}, "
        "by largest |gradient x activation|, in position order; "
    )
    return _heatmap(
        gradients[columns][:, rows].T,
        x,
        y,
        f"To layer {layer_to}",
        f"From layer {layer_from}",
        f"Gradients between SAE latents in layer {layer_from} and layer {layer_to}{title_suffix}"
        f"<br><sup>{'' if every else shown}Prompt: {''.join(str_toks)!r}</sup>",
    )


def plot_token_to_latent(
    gradients: Tensor, latent_acts: Any, str_toks: Sequence[str], layer: int, max_latents: int | None = 80
) -> go.Figure:
    """Heatmap of d(latent)/d(token scale): tokens down the side, active latents along the top.

    The columns are the `max_latents` latents with the largest |gradient| from any token (a token's scale
    is 1, so that is its contribution), in position order; `max_latents=None` shows every active latent."""
    note_unseen_tokens(str_toks)
    magnitude = gradients[0].detach().abs()
    columns = strongest(magnitude.amax(dim=0) if len(magnitude) else torch.zeros(magnitude.shape[1]), max_latents)
    x = _latent_labels(latent_acts.indices[columns], str_toks, layer)
    y = [f"{tok!r} ({i})" for i, tok in enumerate(str_toks)]
    shown = "" if len(x) == magnitude.shape[1] else f"{len(x)} of {magnitude.shape[1]} latents, by largest |gradient|, in position order; "
    return _heatmap(
        gradients[0][:, columns],
        x,
        y,
        f"To layer {layer}",
        "From tokens",
        f"Gradients between input tokens and SAE latents in layer {layer}<br><sup>{shown}Prompt: {''.join(str_toks)!r}</sup>",
        row_px=30,
    )


def plot_latent_to_logit(
    gradients: Tensor,
    latent_acts: Any,
    token_ids: list[int] | None,
    str_toks: Sequence[str],
    layer: int,
    model: Any,
    max_logits: int = 25,
    contributions: bool = False,
    max_latents: int | None = 40,
) -> go.Figure:
    """Heatmap of d(logit)/d(latent) (or, with `contributions`, gradient x activation), one column per latent.

    `token_ids` names the rows (the top-k logits, highest first). None means `gradients` has a row for
    every logit (as with `k=None`): the `max_logits` rows with the largest |gradient| are shown, the
    most responsive first. Columns: the `max_latents` latents with the largest |contribution| to the
    first row's logit, sorted by it (largest first); `max_latents=None` shows every active latent.
    """
    note_unseen_tokens(str_toks)
    if token_ids is None:
        gradients = gradients.reshape(-1, gradients.shape[-1])
        n_logits = gradients.shape[0]
        token_ids = gradients.abs().amax(dim=1).topk(min(max_logits, n_logits)).indices.tolist()
        gradients = gradients[token_ids]
        which = f"the {len(token_ids)} of all {n_logits} logits with the largest gradients"
    else:
        which = f"the top {len(token_ids)} logits"
    contribution = gradients * latent_acts.values[None, :]
    order = strongest(contribution[0].abs(), max_latents, in_position_order=False)
    shown = _shown(len(order), gradients.shape[1], "active latents")
    value_name = "contribution" if contributions else "gradient"
    return _heatmap(
        (contribution if contributions else gradients)[:, order],
        _latent_labels(latent_acts.indices[order], str_toks, layer),
        [f"{model.to_single_str_token(token)!r} ({token})" for token in token_ids],
        f"Latents in layer {layer}",
        "Logits",
        (f"Contributions (gradient x activation) of SAE latents in layer {layer} to {which}" if contributions else f"Gradients between SAE latents in layer {layer} and {which}")
        + f"<br><sup>{shown}, by |contribution| to the top row. Prompt: {''.join(str_toks)!r}</sup>",
        value_name=value_name,
        row_px=28,
    )


def induction_rectangles(prev_pos: Tensor, next_pos: Tensor, seq_len: int) -> list[tuple[int, int, int, int]]:
    """(x0, x1, y0, y1) cell ranges where an induction circuit should show, one per repeated token.

    `prev_pos` and `next_pos` are the positions of a heatmap's earlier latents (rows) and later latents
    (columns). In BOS, A B ..., A B ... the previous-token head writes at the first B (position p) that A
    came before it; the induction head at the second A (position p + seq_len - 1) finds it. So earlier
    latents at p should drive later latents at p + seq_len - 1, for p = 2 .. seq_len + 1. Rows and
    columns are in position order, so each range is contiguous.
    """
    boxes = []
    for first_b in range(2, seq_len + 2):
        second_a = first_b + seq_len - 1
        boxes.append(
            (
                int((next_pos < second_a).sum()),
                int((next_pos <= second_a).sum()),
                int((prev_pos < first_b).sum()),
                int((prev_pos <= first_b).sum()),
            )
        )
    return boxes


def induction_rectangle_masses(gradients: Tensor, latent_acts_prev: Any, latent_acts_next_recon: Any, seq_len: int) -> dict[str, float]:
    """Mean |gradient| per cell inside the induction rectangles (see `induction_rectangles`) and outside them.

    "outside_causal" leaves out the cells whose earlier latent's position comes after the later
    latent's, whose gradient the causal mask makes zero.
    """
    pos_from, pos_to = latent_acts_prev.indices[:, 1][None, :], latent_acts_next_recon.indices[:, 1][:, None]
    inside = (pos_to == pos_from + seq_len - 1) & (pos_from >= 2) & (pos_from <= seq_len + 1)
    causal = pos_from <= pos_to
    magnitude = gradients.detach().abs()
    return {
        "inside": magnitude[inside].mean().item(),
        "outside": magnitude[~inside].mean().item(),
        "outside_causal": magnitude[~inside & causal].mean().item(),
    }


def gradients_between_positions(
    gradients: Tensor, latent_acts_prev: Any, latent_acts_next_recon: Any, pos_from: int, pos_to: int
) -> tuple[Tensor, Tensor, Tensor]:
    """The block of a latent-to-latent Jacobian from the earlier latents at `pos_from` to the later ones at `pos_to`.

    Returns (gradients (n_to, n_from), the earlier latent ids, the later latent ids).
    """
    rows = latent_acts_next_recon.indices[:, 1] == pos_to
    cols = latent_acts_prev.indices[:, 1] == pos_from
    return gradients[rows][:, cols], latent_acts_prev.indices[cols, -1], latent_acts_next_recon.indices[rows, -1]


def same_position_share(gradients: Tensor, latent_acts_prev: Any, latent_acts_next_recon: Any, top: int) -> float:
    """Of a latent-to-latent Jacobian's `top` largest |gradients|, the share that join two latents at the same position."""
    order = gradients.detach().abs().flatten().argsort(descending=True)[:top]
    rows, cols = order // gradients.shape[1], order % gradients.shape[1]
    return (latent_acts_next_recon.indices[rows, 1] == latent_acts_prev.indices[cols, 1]).float().mean().item()


# A gradient counts as large above this fraction of the largest |gradient| in its matrix.
LARGE_GRADIENT_FRACTION = 0.1


def gradient_shares(
    gradients: Tensor, latent_acts_prev: Any, latent_acts_next_recon: Any, fraction: float = LARGE_GRADIENT_FRACTION
) -> dict[str, float]:
    """Shares of a latent-to-latent Jacobian's entries: `causal`, those the causal mask allows (earlier
    latent's position <= later latent's); `nonzero`; `large`, those above `fraction` of the largest |gradient|."""
    pos_from, pos_to = latent_acts_prev.indices[:, 1][None, :], latent_acts_next_recon.indices[:, 1][:, None]
    magnitude = gradients.detach().abs()
    return {
        "causal": (pos_from <= pos_to).float().mean().item(),
        "nonzero": (magnitude > 0).float().mean().item(),
        "large": (magnitude > fraction * magnitude.max()).float().mean().item(),
    }


def token_gradients_of_latent(token_latent_grads: Tensor, latent_acts: Any, pos: int, latent: int) -> Tensor:
    """The column of a token-to-latent Jacobian for one latent at one position: d(its activation)/d(each token's scale), (seq,)."""
    column = ((latent_acts.indices[:, 1] == pos) & (latent_acts.indices[:, -1] == latent)).nonzero().item()
    return token_latent_grads[0, :, column].detach()


def plot_induction(
    gradients: Tensor,
    latent_acts_prev: Any,
    latent_acts_next_recon: Any,
    str_toks: Sequence[str],
    layer_from: int,
    layer_to: int,
    seq_len: int,
    max_latents: int | None = 60,
    select_by: Tensor | None = None,
) -> go.Figure:
    """The latent-to-latent heatmap between attention SAEs (see `plot_latent_to_latent` for `max_latents` and
    `select_by`), with the induction rectangles outlined around the latents shown."""
    select_by = gradients if select_by is None else select_by
    fig = plot_latent_to_latent(
        gradients, latent_acts_prev, latent_acts_next_recon, str_toks, layer_from, layer_to, " (attention SAEs)", max_latents, select_by
    )
    columns, rows = latent_to_latent_selection(select_by, latent_acts_prev.values, max_latents)
    for x0, x1, y0, y1 in induction_rectangles(latent_acts_prev.indices[rows, 1], latent_acts_next_recon.indices[columns, 1], seq_len):
        if x1 > x0 and y1 > y0:
            # On a categorical axis, category i sits at coordinate i: a box around categories x0..x1-1.
            fig.add_shape(type="rect", x0=x0 - 0.5, x1=x1 - 0.5, y0=y0 - 0.5, y1=y1 - 0.5, line={"color": "black", "width": 1.5})
    return fig


def latents_on_every_repeated_token(latent_acts_next_recon: Any, seq_len: int) -> list[int]:
    """Later-layer latents active at every position of the repeated half (where induction predicts)."""
    indices = latent_acts_next_recon.indices
    second_half = Counter(indices[indices[:, 1] >= seq_len + 1][:, 2].tolist())
    return sorted(latent for latent, count in second_half.items() if count >= seq_len)


def induction_latents(latent_acts_next_recon: Any, seq_len: int) -> list[int]:
    """The latents on every repeated token (`latents_on_every_repeated_token`) that are active at no more than
    half the positions of the first half.

    The first half has no earlier copy of its tokens, so induction has nothing to act on there: a latent that
    fires as often on the first half as on the repeated half reads the tokens or their positions, not their
    repetition. Allowing up to half the first-half positions keeps a latent that fires at least twice as often
    where the tokens repeat as where they are new."""
    indices = latent_acts_next_recon.indices
    first_half = Counter(indices[(indices[:, 1] >= 1) & (indices[:, 1] <= seq_len)][:, 2].tolist())
    return [latent for latent in latents_on_every_repeated_token(latent_acts_next_recon, seq_len) if first_half[latent] <= seq_len // 2]


def plot_induction_filtered(
    gradients: Tensor,
    latent_acts_prev: Any,
    latent_acts_next_recon: Any,
    str_toks: Sequence[str],
    layer_from: int,
    layer_to: int,
    seq_len: int,
    max_latents: int | None = 60,
) -> go.Figure:
    """Only the later layer's induction latents (see `induction_latents`) on the repeated half, against earlier
    latents on the first half.

    The columns are the `max_latents` earlier latents with the largest |gradient x activation| into the rows,
    in position order; `max_latents=None` shows every earlier latent on the first half."""
    latents = torch.tensor(induction_latents(latent_acts_next_recon, seq_len), device=gradients.device, dtype=torch.long)
    next_idx = latent_acts_next_recon.indices
    prev_idx = latent_acts_prev.indices
    mask_next = (next_idx[:, 2:3] == latents[None, :]).any(dim=1) & (next_idx[:, 1] >= seq_len + 1)
    mask_prev = (prev_idx[:, 1] >= 1) & (prev_idx[:, 1] <= seq_len)
    block = gradients[mask_next][:, mask_prev]
    _, columns = latent_to_latent_selection(block, latent_acts_prev.values[mask_prev], max_latents)
    y = _latent_labels(next_idx[mask_next], str_toks, layer_to)
    x = _latent_labels(prev_idx[mask_prev][columns], str_toks, layer_from)
    shown = "" if len(x) == block.shape[1] else f"{len(x)} of {block.shape[1]} earlier latents, by largest |gradient x activation|, in position order; "
    return _heatmap(
        block[:, columns],
        x,
        y,
        f"From layer {layer_from} (first half)",
        f"To layer {layer_to} (induction latents, second half)",
        f"Induction latents in layer {layer_to} and the layer-{layer_from} latents that drive them"
        f"<br><sup>{shown}Prompt: {''.join(str_toks)!r}</sup>",
    )


def show_attention_patterns(model: Any, tokens: Tensor, heads: Sequence[tuple[int, int]]) -> None:
    """circuitsvis's attention view for `heads`, rendered from the JavaScript circuitsvis ships (no CDN)."""
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    patterns = torch.stack([cache["pattern", layer][0, head] for layer, head in heads])
    view = cv.attention.attention_heads(
        tokens=model.to_str_tokens(tokens[0]),
        attention=patterns.cpu(),
        attention_head_names=[f"{layer}.{head}" for layer, head in heads],
    )
    # The view's own _repr_html_ probes the internet to choose between the CDN and this local copy.
    display(HTML(view.local_src))
