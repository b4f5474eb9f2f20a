"""The offline toy world: a small trained transformer and its SAEs, shipped in `toy_world_data/`.

`scripts/train_toy_world.py` trains it on `part_utils.toy_corpus` and writes the files; this module
loads them as the same classes as the GPT-2 world (`HookedSAETransformer`, `StandardSAE`) into a
`World`, and holds the measurements of the model alone (head scores, SAE quality) that the training
script uses to choose the exercise settings and that `project_tests/test_toy_world.py` checks.

The model was trained on a compact vocabulary (the ~240 GPT-2 tokens the corpus uses); the files
store only those rows. Loading expands them to GPT-2's full vocabulary, so token ids, the tokenizer
and `d_vocab` are GPT-2's: unused tokens embed to zero and get a logit of `UNUSED_TOKEN_LOGIT`, so
they never reach any top-k.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from sae_lens import SAE, HookedSAETransformer, StandardSAE, StandardSAEConfig
from sae_lens.saes.sae import SAEMetadata
from safetensors.torch import load_file
from transformer_lens import HookedTransformerConfig
from transformer_lens.utilities import get_act_name

from part_utils.observations import toy_observations
from part_utils.tokenizer import GPT2_VOCAB_SIZE, gpt2_model_tokenizer, gpt2_tokenizer
from part_utils.toy_corpus import card_texts
from part_utils.world_types import ExerciseSettings, World

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
    model = HookedSAETransformer(cfg, tokenizer=gpt2_model_tokenizer())
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

    resid_saes = {layer: load_sae(get_act_name("resid_pre", layer), False) for layer in range(n_layers)}
    attn_saes = {layer: load_sae(get_act_name("z", layer), True) for layer in range(n_layers)}
    return model, resid_saes, attn_saes, world["settings"]


def load_toy_world(device: torch.device | str = "cpu") -> World:
    model, saes, attn_saes, settings = load_toy_world_parts(device)
    exercises = ExerciseSettings.from_dict(settings)
    return World(
        name="toy",
        model=model,
        saes=saes,
        attn_saes=attn_saes,
        exercises=exercises,
        description="offline: a small model trained on landmark facts and induction sequences, shipped with the course",
        facts=toy_observations(settings["facts"], exercises),
        corpus=card_texts,
    )


# --- Measurements of the model and its SAEs alone, used by the training script to choose settings and by
# the project's tests. Measurements through the exercises use the exercises' own functions (scripts/, project_tests/).


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
