"""Seeded worlds of random weights, at any size.

The model is a `HookedSAETransformer` with TransformerLens's own initialisation and GPT-2's real
tokenizer. Each SAE has random unit decoder directions, a tied encoder, and encoder biases set so
that about `l0` latents fire per token on calibration text: random but sparse, like a real SAE's
activations, which is what the gradient exercises need to run (their pictures are noise here; the
trained toy world is the one that teaches).
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import weakref
from dataclasses import dataclass, replace

import torch
from sae_lens import SAE, HookedSAETransformer, StandardSAE, StandardSAEConfig
from sae_lens.saes.sae import SAEMetadata
from transformer_lens import HookedTransformerConfig
from transformer_lens.utilities import get_act_name

from part_utils.gpt2_world import GPT2_EXERCISES
from part_utils.tokenizer import GPT2_VOCAB_SIZE, gpt2_model_tokenizer
from part_utils.world_types import ExerciseSettings, LazySAEs, World

# Text the SAE thresholds are calibrated on: a mix of facts and everyday sentences.
CALIBRATION_TEXTS = (
    "The Eiffel tower is in the city of Paris, and the Colosseum is in Rome.",
    "Big Ben stands in London, while the Brandenburg Gate stands in Berlin.",
    "She opened the window, looked at the rain and decided to stay at home.",
    "In 1969 the first people walked on the Moon; the mission was called Apollo 11.",
    "def add(a, b):\n    return a + b  # a tiny function",
    "The museum is closed on Mondays but opens early on Saturdays.",
)


@dataclass(frozen=True)
class WorldShape:
    n_layers: int
    d_model: int
    n_heads: int
    d_mlp: int
    d_sae: int
    l0: int  # latents active per token, on average
    exercises: ExerciseSettings

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads


def _small_exercises(n_layers: int) -> ExerciseSettings:
    """GPT-2's prompts, on layers that fit a model of `n_layers` layers."""
    gpt2 = GPT2_EXERCISES
    return replace(
        gpt2,
        latent_to_latent=replace(gpt2.latent_to_latent, layer_from=0, layer_to=2),
        token_to_latent=replace(gpt2.token_to_latent, layer=2),
        latent_to_logit=replace(gpt2.latent_to_logit, layer=n_layers - 1, k=10),
        attention=replace(gpt2.attention, layer_from=1, layer_to=2, seq_len=6, prev_token_heads=((1, 0),), induction_heads=((2, 0),)),
    )


# Small enough that every check runs in a fraction of a second on two CPU cores.
TINY_SHAPE = WorldShape(n_layers=4, d_model=64, n_heads=4, d_mlp=256, d_sae=512, l0=12, exercises=_small_exercises(4))
# GPT-2 small's shape, with SAEs as wide as the released ones (24576 latents) and about as sparse.
GPT2_SHAPE = WorldShape(n_layers=12, d_model=768, n_heads=12, d_mlp=3072, d_sae=24576, l0=25, exercises=GPT2_EXERCISES)
# The hidden tests' world, which the grader (grading/grader/hidden_params.py) and the grading kernel
# (grading/kernel/calls.py) each build from the seed the grader draws: one shape, one device, same weights.
HIDDEN_SHAPE = TINY_SHAPE
HIDDEN_DEVICE = "cpu"


def build_random_world(shape: WorldShape, seed: int, device: torch.device | str = "cpu") -> World:
    """A world of random weights, the same for the same `shape` and `seed` on every machine."""
    device = torch.device(device)
    cfg = HookedTransformerConfig(
        n_layers=shape.n_layers,
        d_model=shape.d_model,
        n_heads=shape.n_heads,
        d_head=shape.d_head,
        d_mlp=shape.d_mlp,
        d_vocab=GPT2_VOCAB_SIZE,
        n_ctx=128,
        act_fn="gelu_new",
        normalization_type="LN",
        seed=seed,
        device=str(device),
        model_name=f"random-{shape.n_layers}L-{shape.d_model}d-seed{seed}",
    )
    model = HookedSAETransformer(cfg, tokenizer=gpt2_model_tokenizer()).eval()

    def make_sae(layer: int, is_attention: bool) -> SAE:
        return _calibrated_sae(model, layer, is_attention, shape, seed)

    return World(
        name="random",
        model=model,
        saes=LazySAEs(range(shape.n_layers), lambda layer: make_sae(layer, False), "residual"),
        attn_saes=LazySAEs(range(shape.n_layers), lambda layer: make_sae(layer, True), "attention"),
        exercises=shape.exercises,
        description=f"seeded random weights (seed {seed}); runs the code, teaches nothing",
    )


@functools.lru_cache(maxsize=2)
def hidden_world(seed: int) -> World:
    """The hidden tests' world of one seed, built without printing (the grader's and the kernel's are the same)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return build_random_world(HIDDEN_SHAPE, seed=seed, device=HIDDEN_DEVICE)


# Each model's activations on the calibration texts at every SAE hook, from one forward pass shared by its
# SAEs; recomputed when its weights change.
_CALIBRATION: weakref.WeakKeyDictionary[HookedSAETransformer, tuple[int, dict[str, torch.Tensor]]] = weakref.WeakKeyDictionary()


@torch.no_grad()
def _calibration_activations(model: HookedSAETransformer) -> dict[str, torch.Tensor]:
    version = sum(parameter._version for parameter in model.parameters())
    cached = _CALIBRATION.get(model)
    if cached is None or cached[0] != version:
        hooks = [get_act_name(kind, layer) for layer in range(model.cfg.n_layers) for kind in ("resid_pre", "z")]
        _, cache = model.run_with_cache(list(CALIBRATION_TEXTS), names_filter=hooks, stop_at_layer=model.cfg.n_layers)
        cached = _CALIBRATION[model] = (version, {hook: cache[hook] for hook in hooks})
    return cached[1]


@torch.no_grad()
def _calibrated_sae(model: HookedSAETransformer, layer: int, is_attention: bool, shape: WorldShape, seed: int) -> SAE:
    hook_name = get_act_name("z" if is_attention else "resid_pre", layer)
    d_in = shape.n_heads * shape.d_head if is_attention else shape.d_model
    sae = StandardSAE(
        StandardSAEConfig(
            d_in=d_in,
            d_sae=shape.d_sae,
            device=str(model.cfg.device),
            reshape_activations="hook_z" if is_attention else "none",
            metadata=SAEMetadata(hook_name=hook_name),
        )
    )
    # One generator per SAE, so that loading layers in any order gives the same weights.
    generator = torch.Generator().manual_seed(seed * 10_007 + layer * 2 + is_attention)
    directions = torch.randn(shape.d_sae, d_in, generator=generator)
    directions /= directions.norm(dim=-1, keepdim=True)

    acts = _calibration_activations(model)[hook_name]
    device = model.cfg.device
    sae.W_dec.copy_(directions.to(device))
    sae.W_enc.copy_(directions.T.to(device))
    sae.b_dec.copy_(_tokens_by_features(acts).mean(0))
    # On text like the calibration texts, a latent's projection is roughly normal: a tail beyond z
    # standard deviations with probability l0 / d_sae makes about l0 latents fire per token.
    z = math.sqrt(2) * torch.erfinv(torch.tensor(1 - 2 * shape.l0 / shape.d_sae)).item()
    set_thresholds(sae, acts, shape.l0, z)
    return sae.eval()


def _tokens_by_features(sae_input: torch.Tensor) -> torch.Tensor:
    """(tokens, d_in): a hook's activations with batch and position flattened, hook_z's heads concatenated."""
    return sae_input.flatten(0, 1).flatten(1)


@torch.no_grad()
def set_thresholds(sae: SAE, sae_input: torch.Tensor, l0: int, z: float | None = None) -> None:
    """The random worlds' one calibration rule: each latent's threshold sits `z` standard deviations
    above its mean projection on `sae_input` (encoder biases set to minus the thresholds).

    `z` None picks it from `sae_input` itself, so that exactly `l0` latents per token fire there: for
    an input unlike the calibration text, where the normal tail's `z` gives far more or fewer.
    """
    projections = (_tokens_by_features(sae_input) - sae.b_dec) @ sae.W_enc
    mean, std = projections.mean(0), projections.std(0)
    if z is None:
        standardised = ((projections - mean) / std).flatten()
        z = standardised.kthvalue(len(standardised) - l0 * len(projections)).values
    sae.b_enc.copy_(-(mean + z * std))
