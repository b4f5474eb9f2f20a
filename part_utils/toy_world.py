"""The offline toy world: a small trained transformer and its SAEs, shipped in `toy_world_data/`.

`scripts/train_toy_world.py` trains it on `part_utils.toy_corpus` and writes the files; this module
loads them as the same classes as the GPT-2 world (`HookedSAETransformer`, `StandardSAE`), and
holds the measurements (head scores, SAE quality, latent gradients) that the training script uses
to choose the exercise settings and that `project_tests/test_toy_world.py` checks.

The model was trained on a compact vocabulary (the ~240 GPT-2 tokens the corpus uses); the files
store only those rows. Loading expands them to GPT-2's full vocabulary, so token ids, the tokenizer
and `d_vocab` are GPT-2's: unused tokens embed to zero and get a logit of `UNUSED_TOKEN_LOGIT`, so
they never reach any top-k.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from sae_lens import SAE, HookedSAETransformer, StandardSAE, StandardSAEConfig
from sae_lens.saes.sae import SAEMetadata
from transformer_lens import HookedTransformerConfig

from part_utils.hooks import _get_hook_layer
from part_utils.tokenizer import GPT2_VOCAB_SIZE, gpt2_tokenizer

DATA_DIR = Path(__file__).with_name("toy_world_data")
MODEL_FILE = "model.safetensors"
SAES_FILE = "saes.safetensors"
WORLD_FILE = "world.json"
# Far below any trained token's logit (those span about -10..+15), so an unused token is never
# predicted, yet on the scale of real logits: the checks' tolerances are relative to the largest
# logit, and a -1e4 would make them 500x looser than on GPT-2.
UNUSED_TOKEN_LOGIT = -40.0
# `saes.safetensors` holds each SAE's parameters as "{hook_name}.{parameter}".
SAE_PARAMETERS = ("W_enc", "W_dec", "b_enc", "b_dec")


def resid_hook(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_pre"


def attn_hook(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_z"


def read_world_json(data_dir: Path = DATA_DIR) -> dict[str, Any]:
    return json.loads((data_dir / WORLD_FILE).read_text(encoding="utf-8"))


def expand_vocab(state: dict[str, torch.Tensor], kept_ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Compact-vocabulary weights -> GPT-2-vocabulary weights (zero rows, very negative unused logits)."""
    state = dict(state)
    W_E = state["embed.W_E"].new_zeros(GPT2_VOCAB_SIZE, state["embed.W_E"].shape[1])
    W_E[kept_ids] = state["embed.W_E"]
    W_U = state["unembed.W_U"].new_zeros(state["unembed.W_U"].shape[0], GPT2_VOCAB_SIZE)
    W_U[:, kept_ids] = state["unembed.W_U"]
    b_U = state["unembed.b_U"].new_full((GPT2_VOCAB_SIZE,), UNUSED_TOKEN_LOGIT)
    b_U[kept_ids] = state["unembed.b_U"]
    state.update({"embed.W_E": W_E, "unembed.W_U": W_U, "unembed.b_U": b_U})
    return state


def load_toy_world_parts(
    device: str | torch.device = "cpu", data_dir: Path = DATA_DIR
) -> tuple[HookedSAETransformer, dict[int, SAE], dict[int, SAE], dict]:
    """(model, residual SAEs by layer, attention (hook_z) SAEs by layer, exercise settings), all fp32 on `device`."""
    device = torch.device(device)
    world = read_world_json(data_dir)
    # init_weights=False: every weight is overwritten below, and initialising 50257 rows takes time.
    cfg = HookedTransformerConfig(
        **world["model_config"], d_vocab=GPT2_VOCAB_SIZE, device=str(device), init_weights=False
    )
    model = HookedSAETransformer(cfg, tokenizer=gpt2_tokenizer())
    compact = {name: tensor.float() for name, tensor in load_file(data_dir / MODEL_FILE).items()}
    state = expand_vocab(compact, torch.tensor(world["kept_token_ids"]))
    missing, unexpected = model.load_state_dict(state, strict=False)
    # The only tensors not stored are TransformerLens's constant buffers (causal masks, rotary tables).
    constant_buffers = ("mask", "IGNORE", "rotary_sin", "rotary_cos")
    assert not unexpected and all(name.endswith(constant_buffers) for name in missing), (missing, unexpected)
    model.to(device).eval()

    sae_tensors = load_file(data_dir / SAES_FILE)
    n_layers, d_head = cfg.n_layers, cfg.d_head

    def load_sae(hook_name: str, is_attention: bool) -> SAE:
        d_in = cfg.n_heads * d_head if is_attention else cfg.d_model
        sae = StandardSAE(
            StandardSAEConfig(
                d_in=d_in,
                d_sae=world["d_sae"],
                device=str(device),
                reshape_activations="hook_z" if is_attention else "none",
                metadata=SAEMetadata(hook_name=hook_name),
            )
        )
        sae.load_state_dict({name: sae_tensors[f"{hook_name}.{name}"].float() for name in SAE_PARAMETERS})
        if is_attention:
            # SAELens learns d_head from the first input it encodes; set it now so decode() works first too.
            sae.d_head = d_head
        return sae.to(device).eval()

    resid_saes = {layer: load_sae(resid_hook(layer), False) for layer in range(n_layers)}
    attn_saes = {layer: load_sae(attn_hook(layer), True) for layer in range(n_layers)}
    return model, resid_saes, attn_saes, world["settings"]


# --- Measurements: used by the training script to choose settings and by the project's tests. ---


def repeated_random_tokens(pool: list[int], seq_len: int, n_seqs: int, seed: int, bos: int) -> torch.Tensor:
    """(n_seqs, 2 * seq_len + 1): BOS, then `seq_len` distinct pool tokens, then the same again."""
    generator = torch.Generator().manual_seed(seed)
    pool_tensor = torch.tensor(pool)
    halves = torch.stack([pool_tensor[torch.randperm(len(pool), generator=generator)[:seq_len]] for _ in range(n_seqs)])
    return torch.cat([torch.full((n_seqs, 1), bos), halves, halves], dim=1)


def fact_token_batch(texts: list[str], length: int) -> torch.Tensor:
    """BOS + each text, cut to `length` tokens; texts shorter than that are dropped (no padding needed)."""
    tokenizer = gpt2_tokenizer()
    rows = [[tokenizer.bos_token_id, *tokenizer.encode(text)][:length] for text in texts]
    return torch.tensor([row for row in rows if len(row) == length])


@torch.no_grad()
def head_scores(model: HookedSAETransformer, tokens: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Previous-token and induction scores, each (n_layers, n_heads), on repeated random `tokens`.

    Previous-token score: mean attention from each position to the one before it.
    Induction score: mean attention from each second-half position to the token after its first occurrence.
    """
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    patterns = torch.stack([cache["pattern", layer] for layer in range(model.cfg.n_layers)])  # layer batch head q k
    n_pos = tokens.shape[1]
    queries = torch.arange(1, n_pos)
    prev = patterns[..., queries, queries - 1].mean(dim=(1, 3))
    second_half = torch.arange(seq_len + 1, n_pos)
    induction = patterns[..., second_half, second_half - seq_len + 1].mean(dim=(1, 3))
    return prev, induction


@torch.no_grad()
def sae_quality(model: HookedSAETransformer, sae: SAE, batches: list[torch.Tensor]) -> dict[str, float]:
    """L0, fraction of variance explained, and the share of clean top-1 predictions kept with the SAE spliced in."""
    hook_name = sae.cfg.metadata.hook_name
    n_tokens = l0_sum = residual_sq = total_sq = kept = 0.0
    for tokens in batches:
        clean_logits, cache = model.run_with_cache(tokens, names_filter=hook_name)
        acts = cache[hook_name]
        latents = sae.encode(acts)
        recon = sae.decode(latents)
        flat, flat_recon = acts.flatten(0, 1).flatten(1), recon.flatten(0, 1).flatten(1)
        l0_sum += (latents > 0).sum().item()
        residual_sq += (flat - flat_recon).pow(2).sum().item()
        total_sq += (flat - flat.mean(0)).pow(2).sum().item()
        spliced_logits = model.run_with_saes(tokens, saes=[sae])
        kept += (clean_logits.argmax(-1) == spliced_logits.argmax(-1)).sum().item()
        n_tokens += tokens.numel()
    return {"l0": l0_sum / n_tokens, "fve": 1 - residual_sq / total_sq, "top1_survival": kept / n_tokens}


def resid_latent_gradients(
    model: HookedSAETransformer, sae_from: SAE, sae_to: SAE, tokens: torch.Tensor, pos_from: int, pos_to: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients from the `sae_from` latents active at `pos_from` to the `sae_to` latents active at `pos_to`.

    The same path as the exercise: every position's residual stream is replaced by `sae_from`'s
    reconstruction, run through the layers in between, and encoded by `sae_to`. Returns
    (gradients (n_to, n_from), from latent ids, to latent ids).
    """
    layer_from, layer_to = _get_hook_layer(sae_from), _get_hook_layer(sae_to)
    with torch.no_grad():
        resid = model(tokens, stop_at_layer=layer_from)
        latents = sae_from.encode(resid)
    from_ids = latents[0, pos_from].nonzero().squeeze(-1)

    def later_latents(values: torch.Tensor) -> torch.Tensor:
        patched = latents.clone()
        patched[0, pos_from, from_ids] = values
        resid_to = model(sae_from.decode(patched), start_at_layer=layer_from, stop_at_layer=layer_to)
        return sae_to.encode(resid_to)[0, pos_to]

    with torch.no_grad():
        to_ids = later_latents(latents[0, pos_from, from_ids]).nonzero().squeeze(-1)
    gradients = torch.func.jacrev(lambda values: later_latents(values)[to_ids])(latents[0, pos_from, from_ids])
    return gradients, from_ids, to_ids


def attn_latent_gradients(
    model: HookedSAETransformer, sae_from: SAE, sae_to: SAE, tokens: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients between all active latents of two hook_z SAEs, as in the attention exercise.

    Layer `sae_from`'s z is replaced by its SAE's reconstruction; `sae_to` encodes the resulting
    later z. Returns (gradients (n_to, n_from), from indices (n_from, 3) as (batch, pos, latent),
    to indices (n_to, 3), the clean `sae_to` latent activations).
    """
    layer_from, layer_to = _get_hook_layer(sae_from), _get_hook_layer(sae_to)
    hook_from, hook_to = sae_from.cfg.metadata.hook_name, sae_to.cfg.metadata.hook_name
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=[resid_hook(layer_from), hook_from, hook_to])
        latents_from = sae_from.encode(cache[hook_from])
        latents_to_clean = sae_to.encode(cache[hook_to])
    from_indices = latents_from.nonzero()

    def later_latents(values: torch.Tensor) -> torch.Tensor:
        patched = torch.zeros_like(latents_from).index_put(tuple(from_indices.T), values)
        z_recon = sae_from.decode(patched)
        stored = {}

        def store_z(z: torch.Tensor, hook: Any) -> None:
            stored["z"] = z

        model.run_with_hooks(
            cache[resid_hook(layer_from)],
            start_at_layer=layer_from,
            stop_at_layer=layer_to + 1,
            fwd_hooks=[(hook_from, lambda z, hook: z_recon), (hook_to, store_z)],
        )
        return sae_to.encode(stored["z"])

    values = latents_from[tuple(from_indices.T)]
    with torch.no_grad():
        to_indices = later_latents(values).nonzero()
    gradients = torch.func.jacrev(lambda v: later_latents(v)[tuple(to_indices.T)])(values)
    return gradients, from_indices, to_indices, latents_to_clean


def induction_rectangle_masses(
    gradients: torch.Tensor, from_indices: torch.Tensor, to_indices: torch.Tensor, seq_len: int
) -> dict[str, float]:
    """Mean |gradient| per cell inside the induction rectangles and outside them.

    A rectangle pairs the earlier latents at a first-B position p (2 <= p <= seq_len + 1) with the
    later latents at the second-A position p + seq_len - 1, where the induction head reads what
    the previous-token head wrote. "Outside, causal" leaves out cells whose source position comes
    after the destination, whose gradient is zero by the causal mask.
    """
    pos_from, pos_to = from_indices[:, 1], to_indices[:, 1]
    first_b = pos_from[None, :]
    inside = (pos_to[:, None] == first_b + seq_len - 1) & (first_b >= 2) & (first_b <= seq_len + 1)
    causal = pos_from[None, :] <= pos_to[:, None]
    magnitude = gradients.abs()
    return {
        "inside": magnitude[inside].mean().item(),
        "outside": magnitude[~inside].mean().item(),
        "outside_causal": magnitude[~inside & causal].mean().item(),
    }


def latents_on_every_second_half_token(latents: torch.Tensor, seq_len: int) -> list[int]:
    """Latent ids active at every position of the second half of a (1, 2 * seq_len + 1) induction sequence."""
    second_half = latents[0, seq_len + 1 :] > 0
    counts = Counter(second_half.nonzero()[:, 1].tolist())
    return sorted(latent for latent, count in counts.items() if count >= seq_len)


def all_resid_latent_gradients(
    model: HookedSAETransformer, sae_from: SAE, sae_to: SAE, tokens: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients between every active latent of two residual SAEs, at every position, as in exercise 3.

    Returns (gradients (n_to, n_from), from indices (n_from, 3), to indices (n_to, 3)), indices as (batch, pos, latent).
    """
    layer_from, layer_to = _get_hook_layer(sae_from), _get_hook_layer(sae_to)
    with torch.no_grad():
        latents = sae_from.encode(model(tokens, stop_at_layer=layer_from))
    from_indices = latents.nonzero()

    def later_latents(values: torch.Tensor) -> torch.Tensor:
        patched = torch.zeros_like(latents).index_put(tuple(from_indices.T), values)
        return sae_to.encode(model(sae_from.decode(patched), start_at_layer=layer_from, stop_at_layer=layer_to))

    values = latents[tuple(from_indices.T)]
    with torch.no_grad():
        to_indices = later_latents(values).nonzero()
    gradients = torch.func.jacrev(lambda v: later_latents(v)[tuple(to_indices.T)])(values)
    return gradients, from_indices, to_indices


def same_position_share(gradients: torch.Tensor, from_indices: torch.Tensor, to_indices: torch.Tensor, top: int) -> float:
    """Of the `top` largest |gradients|, the share that connect two latents at the same position."""
    order = gradients.abs().flatten().argsort(descending=True)[:top]
    to_rows, from_cols = order // gradients.shape[1], order % gradients.shape[1]
    return (to_indices[to_rows, 1] == from_indices[from_cols, 1]).float().mean().item()


def token_gradients_to_latent(model: HookedSAETransformer, sae: SAE, tokens: torch.Tensor, pos: int, latent: int) -> torch.Tensor:
    """d(latent at `pos`) / d(scale of each position's embedding), at scale 1: the exercise-4 probe for one latent, (seq,)."""

    def activation(scales: torch.Tensor) -> torch.Tensor:
        embeddings = model(tokens, stop_at_layer=0) * scales[..., None]
        return sae.encode(model(embeddings, start_at_layer=0, stop_at_layer=_get_hook_layer(sae)))[0, pos, latent]

    return torch.func.jacrev(activation)(torch.ones(tokens.shape))[0]
