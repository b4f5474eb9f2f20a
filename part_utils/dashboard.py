"""Latent dashboards: Neuronpedia's page for GPT-2 when online, a card computed here otherwise.

The offline card shows what a latent reads and what it writes:
- its top activating contexts in the world's corpus (the toy world ships its corpus generator);
- the tokens its decoder direction boosts and suppresses through the unembedding (for an attention
  SAE, through the layer's output matrix W_O first). This needs only the weights, so it works for
  GPT-2 offline too, once the model is cached.
"""

from __future__ import annotations

import html
import re
import weakref

import torch
from IPython.display import HTML, IFrame, display
from sae_lens import SAE
from torch import Tensor

from part_utils.hooks import _get_hook_layer, layer_of_hook
from part_utils.network import internet_reachable
from part_utils.world_types import World
from part_utils.worlds import current_world

NEURONPEDIA_EMBED = "https://neuronpedia.org/{id}/{latent}?embed=true&embedexplanation=true&embedplots=true&embedtest=true&height=300"


def _sae_for(world: World, sae_id: str) -> SAE:
    layer = layer_of_hook(sae_id)
    return world.attn_saes[layer] if sae_id.endswith("hook_z") else world.saes[layer]


def _neuronpedia_id(sae_release: str, sae_id: str) -> str | None:
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    release = get_pretrained_saes_directory().get(sae_release)
    return None if release is None else release.neuronpedia_id.get(sae_id)


@torch.no_grad()
def logit_effects(world: World, sae: SAE, latent_idx: int, k: int = 10) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """The k tokens whose logits the latent's decoder direction raises most, and the k it lowers most."""
    model = world.model
    direction = sae.W_dec[latent_idx]
    if sae.cfg.reshape_activations == "hook_z":
        layer = _get_hook_layer(sae)
        direction = torch.einsum("hd,hdm->m", direction.reshape(model.cfg.n_heads, model.cfg.d_head), model.W_O[layer])
    effect = direction @ model.W_U
    # Tokens a world never trained (the toy world keeps only its corpus's vocabulary) have zero
    # unembedding columns; leave them out so they do not crowd the list.
    trained = model.W_U.abs().sum(0) > 0
    effect = torch.where(trained, effect, torch.nan)
    top = effect.nan_to_num(-torch.inf).topk(k)
    bottom = (-effect).nan_to_num(-torch.inf).topk(k)
    return (
        [(model.to_single_str_token(int(i)), float(v)) for v, i in zip(top.values, top.indices)],
        [(model.to_single_str_token(int(i)), -float(v)) for v, i in zip(bottom.values, bottom.indices)],
    )


# The corpus run at one hook, per (model, hook): every card of that SAE reads the same activations (the circuit
# shows a dozen cards of three SAEs). Only the last few are kept: a few MB each for the toy world.
# Each entry keeps a weak reference to its model: an id reused by a later model never finds the old run.
_CORPUS_RUNS: dict[tuple[int, str], tuple[weakref.ref, list[tuple[Tensor, list[int], Tensor]]]] = {}
_MAX_CORPUS_RUNS = 4


@torch.no_grad()
def _corpus_run(world: World, sae: SAE, batch_size: int) -> list[tuple[Tensor, list[int], Tensor]]:
    """Per batch of the corpus: (tokens, each text's length, the SAE's input activations)."""
    model = world.model
    hook_name = sae.cfg.metadata.hook_name
    key = (id(model), hook_name)
    if key not in _CORPUS_RUNS or _CORPUS_RUNS[key][0]() is not model:
        _CORPUS_RUNS.pop(key, None)
        texts = world.corpus()
        batches = []
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            # Right padding: attention is causal, so a text's own positions never see the padding after it.
            tokens = model.to_tokens(batch, padding_side="right")[:, : model.cfg.n_ctx]
            lengths = (tokens != model.tokenizer.pad_token_id).sum(-1).add(1).clamp(max=tokens.shape[1]).tolist()  # +1: BOS is the pad token
            _, cache = model.run_with_cache(tokens, names_filter=hook_name, stop_at_layer=_get_hook_layer(sae) + 1)
            batches.append((tokens, lengths, cache[hook_name]))
        if len(_CORPUS_RUNS) >= _MAX_CORPUS_RUNS:
            del _CORPUS_RUNS[next(iter(_CORPUS_RUNS))]
        _CORPUS_RUNS[key] = (weakref.ref(model), batches)
    return _CORPUS_RUNS[key][1]


@torch.no_grad()
def top_contexts(world: World, sae: SAE, latent_idx: int, n: int = 5, batch_size: int = 64) -> list[tuple[list[str], list[float], int]]:
    """The n corpus contexts where the latent fires hardest: (tokens, activation per token, peak position)."""
    if world.corpus is None:
        return []
    found: list[tuple[float, Tensor, list[float], int]] = []
    for tokens, lengths, sae_input in _corpus_run(world, sae, batch_size):
        acts = sae.encode(sae_input)[..., latent_idx]
        for row, length in enumerate(lengths):
            peak = int(acts[row, :length].argmax())
            if acts[row, peak] > 0:
                found.append((float(acts[row, peak]), tokens[row, :length], acts[row, :length].tolist(), peak))
    found.sort(key=lambda item: -item[0])
    return [(world.model.to_str_tokens(toks), acts, peak) for _, toks, acts, peak in found[:n]]


def _context_html(tokens: list[str], acts: list[float], peak: int, scale: float) -> str:
    spans = []
    for i, (token, act) in enumerate(zip(tokens, acts)):
        alpha = 0.0 if scale <= 0 else min(1.0, max(0.0, act / scale))
        border = "border-bottom:2px solid #b35900;" if i == peak else ""
        title = f"{token!r} (position {i}): activation {act:.3f}"
        spans.append(
            f'<span title="{html.escape(title)}" style="background:rgba(255,140,0,{alpha:.2f});{border}white-space:pre">'
            f"{html.escape(token.replace(chr(10), '⏎'))}</span>"
        )
    return "".join(spans)


def card_anchor(sae_id: str, latent_idx: int) -> str:
    """The HTML id of a latent's offline card, so that other outputs (the circuit's graph) can link to it."""
    return f"latent-card-{re.sub(r'[^A-Za-z0-9]+', '-', sae_id)}-{latent_idx}"


def latent_card_html(world: World, sae_id: str, latent_idx: int) -> str:
    sae = _sae_for(world, sae_id)
    boosted, suppressed = logit_effects(world, sae, latent_idx)
    contexts = top_contexts(world, sae, latent_idx)

    def token_list(items: list[tuple[str, float]], colour: str) -> str:
        return "".join(
            f'<li><code style="background:{colour}">{html.escape(repr(token))}</code> {value:+.2f}</li>' for token, value in items
        )

    if contexts:
        scale = max(max(acts) for _, acts, _ in contexts)
        context_rows = "".join(f"<li>{_context_html(toks, acts, peak, scale)}</li>" for toks, acts, peak in contexts)
        contexts_html = f"<h4>Top activating contexts ({world.name} corpus)</h4><ol>{context_rows}</ol>"
    elif world.corpus is not None:
        contexts_html = "<p><i>This latent never fires on the corpus.</i></p>"
    else:
        contexts_html = "<p><i>No corpus is available offline for this world: only the logit effects are shown.</i></p>"
    return (
        f'<div class="latent-card" id="{card_anchor(sae_id, latent_idx)}" style="font-family:sans-serif;border:1px solid #ccc;border-radius:6px;padding:10px;max-width:900px">'
        f"<h3 style='margin-top:0'>Latent {latent_idx} of {html.escape(sae_id)} "
        f"<small style='color:#666'>({html.escape(world.name)} world, offline card)</small></h3>"
        f"{contexts_html}"
        f"<div style='display:flex;gap:40px'>"
        f"<div><h4>Boosts</h4><ol>{token_list(boosted, '#d6ecff')}</ol></div>"
        f"<div><h4>Suppresses</h4><ol>{token_list(suppressed, '#ffe0e0')}</ol></div>"
        f"</div></div>"
    )


def display_dashboard(
    sae_release: str | None = None,
    sae_id: str = "blocks.0.hook_resid_pre",
    latent_idx: int = 0,
    width: int = 800,
    height: int = 600,
    world: World | None = None,
) -> None:
    """Show a latent's dashboard: Neuronpedia's for GPT-2 online, else an offline card for the world in use.

    `sae_release` defaults to GPT-2's residual release, or its attention release for a hook_z `sae_id`.
    """
    sae_release = sae_release or ("gpt2-small-hook-z-kk" if sae_id.endswith("hook_z") else "gpt2-small-res-jb")
    world = world or current_world()
    if world is None:
        raise RuntimeError("Load a world first: `world = load_world()`.")
    if world.name == "gpt2" and internet_reachable("neuronpedia.org"):
        neuronpedia_id = _neuronpedia_id(sae_release, sae_id)
        if neuronpedia_id is not None:
            display(IFrame(NEURONPEDIA_EMBED.format(id=neuronpedia_id, latent=latent_idx), width=width, height=height))
            return
    display(HTML(latent_card_html(world, sae_id, latent_idx)))
