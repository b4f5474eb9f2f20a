"""Train the offline toy world: a small transformer on `part_utils.toy_corpus`, then SAEs on every layer.

Run from the repository root:  python scripts/train_toy_world.py  (`--measure-only` re-measures the facts
on the shipped weights; `--schedule smoke` runs every training stage for a few steps and measures nothing;
`--out-dir` writes elsewhere). It rewrites `part_utils/toy_world_data/`:

- `model.safetensors`: the transformer's weights in fp16, only the rows of the GPT-2 token ids the corpus
  uses (`part_utils.toy_world` expands them back to GPT-2's vocabulary on loading);
- `saes.safetensors`: one ReLU SAE (SAELens's `StandardTrainingSAE`) per layer on `hook_resid_pre` and one
  per layer on `attn.hook_z`, fp16;
- `world.json`: the model config, the kept token ids, a digest of the weights before fp16 rounding, the
  exercise settings chosen by measurement, the facts the notebooks quote, and the run's wall and CPU time.

Runs on the same kind of CPU write the same bytes (seeds, threads and CPU kernels are fixed here);
`project_tests/test_toy_world_training.py` compares two smoke runs byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import NamedTuple

if __name__ == "__main__":  # before torch loads; the tests that import this file keep their own settings
    # Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine, spinning threads
    # starve each other and a training step can take ten times as long.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Left to themselves, PyTorch's kernels use AVX-512 where the CPU has it and MKL takes its code path
    # and cache blocking from the CPU; either changes the order of float sums. MKL honours "AVX2" on Intel
    # CPUs; on others it takes its reproducible mode's automatic branch (deterministic reductions, static
    # scheduling, fixed cache sizes).
    os.environ["ATEN_CPU_CAPABILITY"] = "avx2"
    os.environ["MKL_CBWR"] = "AVX2"

import torch
from sae_lens import StandardTrainingSAE, StandardTrainingSAEConfig
from sae_lens.saes.sae import SAEMetadata, TrainStepInput
from safetensors.torch import save_file
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.utilities import get_act_name

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import solutions
from part_utils import toy_corpus
from part_utils import toy_world as tw
from part_utils.plots import (
    LARGE_GRADIENT_FRACTION,
    gradient_shares,
    gradients_between_positions,
    induction_latents,
    induction_rectangle_masses,
    latents_on_every_repeated_token,
    same_position_share,
    token_gradients_of_latent,
)
from part_utils.tokenizer import gpt2_tokenizer
from part_utils.world_types import AttentionSettings

SEED = 0
N_THREADS = 2
# Hold-out seed for the measurements: documents the SAEs were not trained on.
EVAL_SEED = 12345

MODEL_CONFIG = dict(
    n_layers=6,
    d_model=128,
    n_heads=4,
    d_head=32,
    d_mlp=512,
    n_ctx=48,
    # Rotary positions: previous-token heads, and so induction heads, form several times sooner than
    # with learned absolute positions, which is what fits training into the time budget.
    positional_embedding_type="rotary",
    act_fn="gelu_new",
    normalization_type="LN",
    model_name="toy-landmarks-6L",
)

# Transformer training. 75% of every batch is induction sequences: induction heads form late (a phase
# change), after enough repeated tokens, and a steady supply of them makes the heads form within the step
# budget; the facts, a quarter of the windows, are learned long before. The batch stays large: what the
# heads need is repeated tokens seen, more than steps taken.
BATCH_SIZE = 32
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 0.01
INDUCTION_FRACTION = 0.75
INDUCTION_SEQ_LENS = range(3, 17)

# SAE training, on activations of held-in windows (facts and induction sequences alike).
D_SAE = 512
SAE_BATCH_SIZE = 1024
SAE_LEARNING_RATE = 3e-3
# L1 coefficient on activations normalised to unit mean squared norm (so one value suits every layer).
SAE_L1_COEFFICIENT = 0.08

# Exercise settings that are not chosen by measurement.
LATENT_PROMPT = "The Eiffel tower is in Paris"
LOGIT_PROMPT, LOGIT_ANSWER, LOGIT_K = "The Eiffel tower is in the city of", " Paris", 10
# Another word the corpus spells with a " E" token, to ask whether the (" E" -> "iff") pair is about " E"
# words in general or about "Eiffel" alone.
OTHER_E_PROMPT = "The Eger castle is in Eger"
# Held-out fact documents on which the induction latents' control counts how often they fire.
CONTROL_DOCUMENTS = 64
# The logit difference's other answer: another city the corpus knows, in the same sentence about its own landmarks.
LOGIT_CONTRAST = " Rome"
# Mean-ablation's reference: the same question about every landmark not in the answer's city.
REFERENCE_PROMPTS = [f"The {landmark} is in the city of" for landmark, city, _ in toy_corpus.LANDMARKS if f" {city}" != LOGIT_ANSWER]
# Short enough that the attention exercise's Jacobian (~800 x 450 on this world) takes a fraction of a
# second, and long enough to show the induction rectangles and a latent on every second-half token.
INDUCTION_SEQ_LEN = 6


class Schedule(NamedTuple):
    """How long each stage trains: the shipped world's, or a few seconds' run with the same code path."""

    steps: int
    warmup_steps: int
    sae_activation_windows: int
    sae_steps: int


SCHEDULES = {
    "full": Schedule(steps=1750, warmup_steps=200, sae_activation_windows=1024, sae_steps=1000),
    # Enough to run every stage (and the reproducibility test) in seconds; the world it gives is untrained.
    "smoke": Schedule(steps=12, warmup_steps=4, sae_activation_windows=64, sae_steps=8),
}


def set_determinism(seed: int) -> None:
    torch.manual_seed(seed)
    torch.set_num_threads(N_THREADS)
    torch.use_deterministic_algorithms(True)


class WindowSampler:
    """Training windows of `n_ctx` compact token ids: fact documents, or induction sequences."""

    def __init__(self, kept_ids: list[int], n_ctx: int, seed: int):
        tokenizer = gpt2_tokenizer()
        self.compact = {token: index for index, token in enumerate(kept_ids)}
        self.n_ctx = n_ctx
        self.rng = random.Random(seed)
        self.bos = tokenizer.bos_token_id
        sentences = toy_corpus.fact_sentences()
        # A sentence opens a document (no space before it) or follows another (a space before it).
        self.openers = [tokenizer.encode(sentence) for sentence in sentences]
        self.followers = [tokenizer.encode(" " + sentence) for sentence in sentences]

    def fact_window(self) -> list[int]:
        window = [self.bos, *self.rng.choice(self.openers)]
        while len(window) < self.n_ctx:
            window += self.rng.choice(self.followers)
        return window[: self.n_ctx]

    def induction_window(self) -> list[int]:
        seq_len = self.rng.choice(INDUCTION_SEQ_LENS)
        return toy_corpus.induction_sequence(self.rng, self.n_ctx, seq_len)

    def batch(self, size: int) -> torch.Tensor:
        windows = [
            self.induction_window() if self.rng.random() < INDUCTION_FRACTION else self.fact_window() for _ in range(size)
        ]
        return torch.tensor([[self.compact[token] for token in window] for window in windows])


def train_model(kept_ids: list[int], sampler: WindowSampler, schedule: Schedule) -> HookedTransformer:
    cfg = HookedTransformerConfig(**MODEL_CONFIG, d_vocab=len(kept_ids), seed=SEED, device="cpu")
    model = HookedTransformer(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)

    def learning_rate_scale(step: int) -> float:  # linear warm-up, then cosine decay to 10%
        if step < schedule.warmup_steps:
            return (step + 1) / schedule.warmup_steps
        progress = (step - schedule.warmup_steps) / (schedule.steps - schedule.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate_scale)
    progress = tqdm(range(schedule.steps), desc="Training transformer")
    for step in progress:
        loss = model(sampler.batch(BATCH_SIZE), return_type="loss")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        if step % 50 == 0:
            progress.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()


def fp32_digest(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].detach().float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def rounded_to_fp16(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().to(torch.float16).contiguous() for name, tensor in tensors.items()}


@torch.no_grad()
def collect_activations(model: HookedTransformer, sampler: WindowSampler, n_windows: int) -> dict[str, torch.Tensor]:
    """Every SAE's training inputs, (tokens, d_in): hook_z's heads are concatenated."""
    hooks = [get_act_name("resid_pre", layer) for layer in range(model.cfg.n_layers)]
    hooks += [get_act_name("z", layer) for layer in range(model.cfg.n_layers)]
    collected: dict[str, list[torch.Tensor]] = {hook: [] for hook in hooks}
    for _ in tqdm(range(n_windows // 64), desc="Collecting activations"):
        _, cache = model.run_with_cache(sampler.batch(64), names_filter=hooks)
        for hook in hooks:
            collected[hook].append(cache[hook].flatten(0, 1).flatten(1))
    return {hook: torch.cat(chunks) for hook, chunks in collected.items()}


def train_sae(hook_name: str, activations: torch.Tensor, seed: int, steps: int) -> dict[str, torch.Tensor]:
    """Train one ReLU SAE with SAELens's own training class; returns its weights for raw activations."""
    torch.manual_seed(seed)
    # Train on activations scaled to unit mean squared norm, then fold the scale into the weights,
    # so that the same L1 coefficient and learning rate suit layers of very different norms.
    scale = activations.pow(2).sum(-1).mean().sqrt()
    inputs = activations / scale
    sae = StandardTrainingSAE(
        StandardTrainingSAEConfig(
            d_in=inputs.shape[1], d_sae=D_SAE, l1_coefficient=SAE_L1_COEFFICIENT, metadata=SAEMetadata(hook_name=hook_name)
        )
    )
    with torch.no_grad():
        sae.b_dec.copy_(inputs.mean(0))  # start the decoder bias at the data's centre
    optimizer = torch.optim.Adam(sae.parameters(), lr=SAE_LEARNING_RATE)
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        batch = inputs[torch.randint(0, len(inputs), (SAE_BATCH_SIZE,), generator=generator)]
        output = sae.training_forward_pass(
            TrainStepInput(
                sae_in=batch,
                coefficients={"l1": SAE_L1_COEFFICIENT},
                dead_neuron_mask=None,
                n_training_steps=step,
                is_logging_step=False,
            )
        )
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    with torch.no_grad():
        return {
            "W_enc": sae.W_enc / scale,
            "b_enc": sae.b_enc.clone(),
            "W_dec": sae.W_dec * scale,
            "b_dec": sae.b_dec * scale,
        }


def remeasure(out_dir: Path) -> None:
    """Re-choose the settings and re-measure the facts on the shipped weights, without training."""
    world = tw.read_world_json(out_dir)
    run_cost = {name: world["settings"]["facts"].get(name) for name in RUN_COST}
    world["settings"] = measure_settings(out_dir)
    world["settings"]["facts"].update(run_cost)
    (out_dir / tw.WORLD_FILE).write_text(json.dumps(world, indent=1))


# What the last full run cost, kept by `--measure-only`: wall seconds, the process's CPU seconds (all
# threads), and the machine's 15-minute load average at the end (other work inflates the wall time).
RUN_COST = ("training_seconds", "training_cpu_seconds", "training_load_average")


def train_world(out_dir: Path, schedule: Schedule) -> dict:
    """Train the transformer and its SAEs; write their weights and a world.json with placeholder settings."""
    set_determinism(SEED)
    out_dir.mkdir(parents=True, exist_ok=True)
    kept_ids = list(toy_corpus.corpus_token_ids())
    sampler = WindowSampler(kept_ids, MODEL_CONFIG["n_ctx"], SEED)

    model = train_model(kept_ids, sampler, schedule)

    trained = dict(model.named_parameters())
    # SAEs are trained on the activations of the model as shipped, i.e. with fp16-rounded weights.
    shipped = rounded_to_fp16(trained)
    model.load_state_dict({name: tensor.float() for name, tensor in shipped.items()}, strict=False)
    save_file(shipped, out_dir / tw.MODEL_FILE)
    activations = collect_activations(model, sampler, schedule.sae_activation_windows)
    sae_weights = {}
    for index, (hook_name, acts) in enumerate(tqdm(activations.items(), desc="Training SAEs")):
        for name, tensor in train_sae(hook_name, acts, SEED + index, schedule.sae_steps).items():
            sae_weights[f"{hook_name}.{name}"] = tensor
    save_file(rounded_to_fp16(sae_weights), out_dir / tw.SAES_FILE)

    world = {
        "model_config": MODEL_CONFIG,
        "d_sae": D_SAE,
        "kept_token_ids": kept_ids,
        # The shipped files are rounded to fp16, which can hide a difference between two runs; this cannot.
        "fp32_weights_sha256": fp32_digest({**trained, **sae_weights}),
        "settings": placeholder_settings(),
    }
    (out_dir / tw.WORLD_FILE).write_text(json.dumps(world, indent=1))
    return world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure-only", action="store_true", help="re-measure the facts on the weights in --out-dir")
    parser.add_argument("--schedule", choices=SCHEDULES, default="full", help="'smoke' trains for seconds and measures nothing")
    parser.add_argument("--out-dir", type=Path, default=tw.DATA_DIR)
    args = parser.parse_args()
    if args.measure_only:
        remeasure(args.out_dir)
        return
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    world = train_world(args.out_dir, SCHEDULES[args.schedule])
    if args.schedule != "full":
        return
    world["settings"] = measure_settings(args.out_dir)
    world["settings"]["facts"].update(
        training_seconds=round(time.perf_counter() - wall_start),
        training_cpu_seconds=round(time.process_time() - cpu_start),
        training_load_average=round(os.getloadavg()[2], 2),
    )
    (args.out_dir / tw.WORLD_FILE).write_text(json.dumps(world, indent=1))
    print(json.dumps({**world["settings"], "attention": {**world["settings"]["attention"], "token_pool": "..."}}, indent=1))
    print(f"Done; files in {args.out_dir}:")
    for path in sorted(args.out_dir.iterdir()):
        print(f"  {path.name}: {path.stat().st_size / 1e6:.2f} MB")


def placeholder_settings() -> dict:
    """Settings good enough to load the world with, before they are measured."""
    return {
        "latent_to_latent": {"layer_from": 0, "layer_to": 3, "prompt": LATENT_PROMPT},
        "token_to_latent": {"layer": 3, "prompt": LATENT_PROMPT},
        "latent_to_logit": logit_settings(4),
        "attention": {
            "layer_from": 0,
            "layer_to": 1,
            "seq_len": INDUCTION_SEQ_LEN,
            "token_pool": toy_corpus.induction_token_pool(),
            "prev_token_heads": [],
            "induction_heads": [],
        },
        "facts": {},
    }


def logit_settings(layer: int) -> dict:
    return {
        "layer": layer,
        "prompt": LOGIT_PROMPT,
        "answer": LOGIT_ANSWER,
        "k": LOGIT_K,
        "contrast": LOGIT_CONTRAST,
        "reference_prompts": REFERENCE_PROMPTS,
    }


def top_head(scores: torch.Tensor) -> tuple[int, int]:
    layer, head = divmod(scores.argmax().item(), scores.shape[1])
    return layer, head


@torch.no_grad()
def paris_rank(model, prompt: str, answer: str, saes=()) -> tuple[int, float]:
    """Rank and probability of `answer` after `prompt`, optionally with SAEs spliced in."""
    logits = model.run_with_saes(prompt, saes=list(saes))[0, -1]
    answer_id = model.to_single_token(answer)
    return int((logits > logits[answer_id]).sum().item()), logits.softmax(-1)[answer_id].item()


def measure_settings(data_dir: Path) -> dict:
    """Load the world as the course will, measure it, and choose the exercise settings from the measurements."""
    model, resid_saes, attn_saes, settings = tw.load_toy_world_parts("cpu", data_dir)
    # The sequences the attention exercise uses (its heads and layers are what is measured here).
    sequences = AttentionSettings.from_dict(settings["attention"])
    pool = settings["attention"]["token_pool"]
    facts: dict = {}

    # Heads: the best induction head, and the best previous-token head in an earlier layer.
    repeated = sequences.repeated_tokens(model, EVAL_SEED, n_seqs=32)
    prev_scores, induction_scores = tw.head_scores(model, repeated, INDUCTION_SEQ_LEN)
    induction_scores[0] = 0  # layer 0 cannot do induction: nothing has been moved yet
    induction_layer, induction_head = top_head(induction_scores)
    prev_layer, prev_head = top_head(prev_scores[:induction_layer])
    facts["prev_token_score"] = round(prev_scores[prev_layer, prev_head].item(), 3)
    facts["induction_score"] = round(induction_scores[induction_layer, induction_head].item(), 3)
    facts["prev_token_scores"] = prev_scores.round(decimals=3).tolist()
    facts["induction_scores"] = induction_scores.round(decimals=3).tolist()

    # Every SAE's quality, on held-out fact documents and on induction sequences.
    eval_batches = [tw.fact_token_batch(toy_corpus.corpus_texts(EVAL_SEED, 64), 32), repeated]
    facts["sae_quality"] = {
        sae.cfg.metadata.hook_name: {name: round(value, 3) for name, value in tw.sae_quality(model, sae, eval_batches).items()}
        for sae in [*resid_saes.values(), *attn_saes.values()]
    }

    # Latent-to-logit: a late layer whose SAE, spliced in, still predicts " Paris" first.
    paris, paris_probability = paris_rank(model, LOGIT_PROMPT, LOGIT_ANSWER)
    facts["paris_rank"], facts["paris_prob"] = paris, round(paris_probability, 4)
    n_layers = model.cfg.n_layers
    # (n_layers - 2 is GPT-2's choice, layer 9 of 12, scaled down; also the fallback if none qualifies.)
    logit_layer = next(
        (
            layer
            for layer in (n_layers - 2, n_layers - 1, n_layers - 3)
            if paris_rank(model, LOGIT_PROMPT, LOGIT_ANSWER, [resid_saes[layer]])[0] == 0
        ),
        n_layers - 2,
    )

    # Latent-to-latent: from layer 0 at " E" to the later layer with the strongest latent pair at "iff".
    tokens = model.to_tokens(LATENT_PROMPT)
    str_tokens = model.to_str_tokens(LATENT_PROMPT)
    e_pos, iff_pos = str_tokens.index(" E"), str_tokens.index("iff")
    best = None
    for layer_to in (2, 3, 4):
        gradients, prev, _, next_recon = solutions.latent_to_latent_gradients(tokens, resid_saes[0], resid_saes[layer_to], model)
        gradients, from_ids, to_ids = gradients_between_positions(gradients, prev, next_recon, e_pos, iff_pos)
        to_index, from_index = divmod(gradients.abs().argmax().item(), gradients.shape[1])
        candidate = (gradients[to_index, from_index].item(), layer_to, from_ids[from_index].item(), to_ids[to_index].item())
        if best is None or abs(candidate[0]) > abs(best[0]):
            best = candidate
    gradient, bigram_layer, e_latent, iff_latent = best
    facts.update(e_latent=e_latent, iff_latent=iff_latent, e_iff_gradient=round(gradient, 4))
    facts.update(measure_bigram_views(model, resid_saes[0], resid_saes[bigram_layer], tokens, iff_pos, iff_latent))

    # Induction circuit between the previous-token head's layer and the induction head's layer.
    notebook_sequence = sequences.repeated_tokens(model, seed=0)
    gradients, prev, next_true, next_recon = solutions.latent_to_latent_gradients_attn(
        notebook_sequence, attn_saes[prev_layer], attn_saes[induction_layer], model
    )
    masses = induction_rectangle_masses(gradients, prev, next_recon, INDUCTION_SEQ_LEN)
    facts["induction_rectangle_mass"] = {name: round(value, 5) for name, value in masses.items()}
    facts["induction_latents"] = induction_latents(next_true, INDUCTION_SEQ_LEN)
    # The induction latents and those the first-half control sets aside.
    facts["latents_on_every_repeated_token"] = len(latents_on_every_repeated_token(next_true, INDUCTION_SEQ_LEN))
    facts.update(measure_induction_controls(model, attn_saes[prev_layer], attn_saes[induction_layer], notebook_sequence, facts["induction_latents"]))
    facts.update(measure_claims(model, resid_saes, bigram_layer, logit_layer, facts))

    facts.update(measure_attribution(model, resid_saes, logit_settings(logit_layer), sorted({0, bigram_layer, logit_layer})))

    def heads_over(scores: torch.Tensor, layer: int, best_head: int) -> list[int]:
        return sorted({best_head, *(scores[layer] > 0.4).nonzero().flatten().tolist()})

    return {
        "latent_to_latent": {"layer_from": 0, "layer_to": bigram_layer, "prompt": LATENT_PROMPT},
        "token_to_latent": {"layer": bigram_layer, "prompt": LATENT_PROMPT},
        "latent_to_logit": logit_settings(logit_layer),
        "attention": {
            "layer_from": prev_layer,
            "layer_to": induction_layer,
            "seq_len": INDUCTION_SEQ_LEN,
            "token_pool": pool,
            "prev_token_heads": [[prev_layer, h] for h in heads_over(prev_scores, prev_layer, prev_head)],
            "induction_heads": [[induction_layer, h] for h in heads_over(induction_scores, induction_layer, induction_head)],
        },
        "facts": facts,
    }


def measure_bigram_views(model, sae_from, sae_to, tokens: torch.Tensor, iff_pos: int, iff_latent: int) -> dict:
    """What the notebook says about the whole latent-to-latent matrix, and about the token view of the bigram."""
    gradients, prev, _, next_recon = solutions.latent_to_latent_gradients(tokens, sae_from, sae_to, model)
    token_gradients = token_gradients_of_latent(*solutions.token_to_latent_gradients(tokens, sae_to, model), iff_pos, iff_latent)
    return {
        "same_position_share_top50": round(same_position_share(gradients, prev, next_recon, 50), 3),
        "iff_token_gradients": [round(value, 4) for value in token_gradients[: iff_pos + 1].tolist()],
    }


def measure_claims(model, resid_saes, bigram_layer: int, logit_layer: int, facts: dict) -> dict:
    """The figures behind the notebook's claims about the bigram, the city/country contrast and what the world was trained on."""
    measured: dict = {"training": training_description()}
    tokens = model.to_tokens(LATENT_PROMPT)
    gradients, prev, _, next_recon = solutions.latent_to_latent_gradients(tokens, resid_saes[0], resid_saes[bigram_layer], model)
    measured["gradient_shares"] = {name: round(value, 4) for name, value in gradient_shares(gradients, prev, next_recon).items()}
    measured["large_gradient_fraction"] = LARGE_GRADIENT_FRACTION
    measured.update(cross_position_ranking(model, gradients, prev, next_recon, facts["e_latent"], facts["iff_latent"]))
    measured["other_e_word"] = other_e_word(model, resid_saes[0], resid_saes[bigram_layer], facts["e_latent"], facts["iff_latent"])
    measured["paris_rank_with_sae"] = paris_rank(model, LOGIT_PROMPT, LOGIT_ANSWER, [resid_saes[logit_layer]])[0]
    measured["city_country"] = city_country_predictions(model)
    return measured


def training_description() -> dict:
    """What the world was trained on, as the notebook lists it (settings of this script, not measurements)."""
    return {
        "landmarks": [list(fact) for fact in toy_corpus.LANDMARKS],
        "induction_fraction": INDUCTION_FRACTION,
        "induction_run_lengths": [min(INDUCTION_SEQ_LENS), max(INDUCTION_SEQ_LENS)],
        "n_ctx": MODEL_CONFIG["n_ctx"],
    }


def cross_position_ranking(model, gradients, prev, next_recon, e_latent: int, iff_latent: int, top: int = 3) -> dict:
    """Where the (" E" -> "iff") pair ranks among every cross-position |gradient| on the prompt, and the largest ones."""
    str_tokens = model.to_str_tokens(LATENT_PROMPT)
    pos_from, pos_to = prev.indices[:, 1], next_recon.indices[:, 1]
    cross = (pos_from[None, :] != pos_to[:, None]) & (pos_from[None, :] <= pos_to[:, None])
    magnitude = torch.where(cross, gradients.abs(), torch.zeros_like(gradients))
    order = magnitude.flatten().argsort(descending=True)
    n_cols = gradients.shape[1]

    def pair(flat: int) -> dict:
        row, col = divmod(flat, n_cols)
        (_, p_from, l_from), (_, p_to, l_to) = prev.indices[col].tolist(), next_recon.indices[row].tolist()
        return {"from": [l_from, str_tokens[p_from], p_from], "to": [l_to, str_tokens[p_to], p_to], "gradient": round(gradients[row, col].item(), 4)}

    pairs = [pair(flat) for flat in order[: int(cross.sum())].tolist()]
    e_pos, iff_pos = str_tokens.index(" E"), str_tokens.index("iff")
    rank = next(i for i, p in enumerate(pairs) if p["from"][0::2] == [e_latent, e_pos] and p["to"][0::2] == [iff_latent, iff_pos])
    return {"e_iff_cross_rank": rank + 1, "n_cross_position_pairs": len(pairs), "largest_cross_position": pairs[:top]}


def other_e_word(model, sae_from, sae_to, e_latent: int, iff_latent: int) -> dict:
    """On another " E" word: the largest gradient from the " E" latent to a latent on the token after it."""
    str_tokens = model.to_str_tokens(OTHER_E_PROMPT)
    e_pos = str_tokens.index(" E")
    gradients, prev, _, next_recon = solutions.latent_to_latent_gradients(model.to_tokens(OTHER_E_PROMPT), sae_from, sae_to, model)
    block, from_ids, to_ids = gradients_between_positions(gradients, prev, next_recon, e_pos, e_pos + 1)
    column = (from_ids == e_latent).nonzero()
    if not len(column) or not block.numel():
        return {"prompt": OTHER_E_PROMPT, "next_token": str_tokens[e_pos + 1], "e_latent_active": bool(len(column))}
    gradients_from_e = block[:, column.item()]
    best = gradients_from_e.abs().argmax().item()
    return {
        "prompt": OTHER_E_PROMPT,
        "next_token": str_tokens[e_pos + 1],
        "e_latent_active": True,
        "largest_latent": to_ids[best].item(),
        "largest_gradient": round(gradients_from_e[best].item(), 4),
        "iff_latent_active": bool((to_ids == iff_latent).any()),
    }


@torch.no_grad()
def city_country_predictions(model) -> dict:
    """For every landmark, the top prediction and its probability after "... in the city of" and "... in the country of"."""
    results = {}
    for landmark, city, country in toy_corpus.LANDMARKS:
        row = {}
        for kind, answer in (("city", city), ("country", country)):
            probabilities = model(toy_corpus.landmark_prompt(landmark, kind))[0, -1].softmax(-1)
            top = probabilities.argmax().item()
            expected = model.to_tokens(" " + answer, prepend_bos=False)[0, 0].item()  # a name's first token
            row[kind] = {"top": model.to_string(top), "expected": model.to_string(expected), "probability": round(probabilities[expected].item(), 4)}
        results[landmark] = row
    return results


@torch.no_grad()
def measure_induction_controls(model, sae_from, sae_to, sequence: torch.Tensor, latents: list[int], top: int = 3) -> dict:
    """The induction latents' control (how often they fire on the first half and on fact text) and the
    earlier-layer latents with the largest gradients into them (candidate previous-token latents)."""
    hook_to = sae_to.cfg.metadata.hook_name
    _, cache = model.run_with_cache(sequence, names_filter=hook_to)
    acts = sae_to.encode(cache[hook_to])[0]
    documents = tw.fact_token_batch(toy_corpus.corpus_texts(EVAL_SEED, CONTROL_DOCUMENTS), 32)
    _, fact_cache = model.run_with_cache(documents, names_filter=hook_to)
    fact_acts = sae_to.encode(fact_cache[hook_to])
    control = {
        str(latent): {
            "first_half": int((acts[1 : INDUCTION_SEQ_LEN + 1, latent] > 0).sum()),
            "second_half": int((acts[INDUCTION_SEQ_LEN + 1 :, latent] > 0).sum()),
            "fact_text_share": round((fact_acts[..., latent] > 0).float().mean().item(), 4),
        }
        for latent in latents
    }
    with torch.enable_grad():
        gradients, prev, _, next_recon = solutions.latent_to_latent_gradients_attn(sequence, sae_from, sae_to, model)
    into = (next_recon.indices[:, 2:3] == torch.tensor(latents)[None, :]).any(1) & (next_recon.indices[:, 1] > INDUCTION_SEQ_LEN)
    first_half = (prev.indices[:, 1] >= 1) & (prev.indices[:, 1] <= INDUCTION_SEQ_LEN)
    strength: dict[int, float] = {}
    if into.any() and first_half.any():
        block = gradients[into][:, first_half].abs().amax(0)
        for latent, value in zip(prev.indices[first_half, 2].tolist(), block.tolist()):
            strength[latent] = max(strength.get(latent, 0.0), value)
    ranked = sorted(strength, key=lambda latent: -strength[latent])[:top]
    return {"induction_latent_control": control, "prev_token_latents": ranked}
@torch.no_grad()
def latent_acts(model, sae, tokens: torch.Tensor) -> torch.Tensor:
    """The SAE's dense activations on the clean run, (1, seq, d_sae)."""
    _, cache = model.run_with_cache(tokens, names_filter=[sae.cfg.metadata.hook_name])
    return sae.encode(cache[sae.cfg.metadata.hook_name])


# Latents in the estimate-vs-effect table from the latent-to-logit layer (by |estimate| on the logit difference).
ATTRIBUTION_TOP = 8


def measure_attribution(model, resid_saes, logit: dict, circuit_layers: list[int]) -> dict:
    """Is the attribution true? The estimate-vs-effect table (the top latents at the latent-to-logit layer and the
    capstone circuit's latents; zero- and mean-ablation, both metrics), and the capstone's completeness, necessity
    and sufficiency against the matched control, with and without layer 0. `circuit_layers` are the capstone's
    (`ExerciseSettings.residual_layers`)."""
    from part_utils.attribution import mean_latent_acts
    from part_utils.circuit import circuit_faithfulness, completeness
    from part_utils.world_types import CIRCUIT_K

    tokens = model.to_tokens(logit["prompt"])
    str_tokens = model.to_str_tokens(logit["prompt"])
    answer_id, contrast_id = model.to_single_token(logit["answer"]), model.to_single_token(logit["contrast"])
    sae = resid_saes[logit["layer"]]
    acts = latent_acts(model, sae, tokens)
    active = (acts > 0).nonzero()
    estimates, _ = solutions.attribution_and_ablation(tokens, sae, model, active, torch.zeros(len(active)), answer_id, contrast_id)
    top = [(logit["layer"], *active[row, 1:].tolist()) for row in estimates[:, 0].abs().argsort(descending=True)[:ATTRIBUTION_TOP].tolist()]
    circuit = solutions.latent_circuit(tokens, resid_saes, model, circuit_layers, answer_id, CIRCUIT_K)
    capstone = [(node.layer, node.position, node.index) for node in circuit.latents()]
    rows = []
    for source, latents in (("top", top), ("circuit", capstone)):
        for layer, position, latent in latents:
            if source == "circuit" and (layer, position, latent) in top:
                next(row for row in rows if row["key"] == [layer, position, latent])["source"] = "top, circuit"
                continue
            layer_sae = resid_saes[layer]
            inds = torch.tensor([[0, position, latent]] * 2)
            ablated = torch.stack([torch.tensor(0.0), mean_latent_acts(logit["reference_prompts"], layer_sae, model)[latent]])
            est, eff = solutions.attribution_and_ablation(tokens, layer_sae, model, inds, ablated, answer_id, contrast_id)
            activation = latent_acts(model, layer_sae, tokens)[0, position, latent].item()
            rows.append(
                {
                    "key": [layer, position, latent],
                    "token": str_tokens[position],
                    "source": source,
                    "activation": round(activation, 4),
                    # [estimate, effect] of each ablation on each metric
                    "zero": {"difference": [round(est[0, 0].item(), 4), round(eff[0, 0].item(), 4)], "probability": [round(est[0, 1].item(), 6), round(eff[0, 1].item(), 6)]},
                    "mean": {"difference": [round(est[1, 0].item(), 4), round(eff[1, 0].item(), 4)], "probability": [round(est[1, 1].item(), 6), round(eff[1, 1].item(), 6)]},
                }
            )

    def faithfulness(layers: list[int]) -> dict:
        result = circuit_faithfulness(circuit, tokens, resid_saes, model, contrast_id, layers=layers, n_random=20, seed=0)
        return {
            "layers": list(result.layers),
            "clean": [round(value, 4) for value in result.clean],
            **{
                ablation.name: {
                    "circuit": [round(value, 4) for value in ablation.circuit_drop],
                    "control_mean": round(ablation.control_mean(0), 4),
                    "control_std": round(ablation.control_std(0), 4),
                    "control_beats": ablation.control_beats,
                    "draws": len(ablation.control_drops),
                }
                for ablation in (result.necessity, result.sufficiency)
            },
        }

    without_zero = [layer for layer in circuit_layers if layer != 0]
    return {
        "attribution": rows,
        "circuit_completeness": {
            str(layer): {name: round(value, 4) for name, value in completeness(circuit, tokens, resid_saes, model, contrast_id, layer).items()}
            for layer in circuit_layers
        },
        "circuit_faithfulness": [faithfulness(circuit_layers), faithfulness(without_zero)],
    }


if __name__ == "__main__":
    main()
