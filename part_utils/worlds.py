"""Worlds: a model, its SAEs, and the layers and prompts each exercise uses.

Every exercise runs unchanged in every world; only the world's own layers, prompts and latent ids
differ. The worlds are:

- `gpt2`: GPT-2 small with the `gpt2-small-res-jb` (residual) and `gpt2-small-hook-z-kk` (attention)
  SAE releases, downloaded from Hugging Face. Only the SAEs an exercise uses are loaded.
- `toy`: a small model trained on a corpus of landmark facts and induction sequences, with SAEs on
  every layer, shipped with the course so it runs with no network.
- `random`: seeded random weights at any size. The course's own tests and the autograder's hidden
  tests use it; the benchmark uses it at GPT-2's shape.

`load_world()` picks one by argument, else by the `LATENT_GRADIENTS_WORLD` environment variable,
else `auto`: GPT-2 when Hugging Face can be reached (or its files are cached), the toy world
otherwise. The autograder's `LATENT_GRADIENTS_GRADING_WORLD` overrides all of these.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from sae_lens import SAE, HookedSAETransformer
from tqdm.auto import tqdm

# The network probe lives on its own, without torch, so that scripts can fail fast before importing it.
from part_utils.network import hub_address, internet_reachable  # noqa: F401 (re-exported; tests patch worlds.internet_reachable)

WORLD_ENV = "LATENT_GRADIENTS_WORLD"
# Set by the autograder: every load_world() call gets this world, whatever the notebook asks for.
GRADING_WORLD_ENV = "LATENT_GRADIENTS_GRADING_WORLD"
WORLD_NAMES = ("auto", "gpt2", "toy", "random")


@dataclass(frozen=True)
class LatentToLatentSettings:
    layer_from: int
    layer_to: int
    prompt: str


@dataclass(frozen=True)
class TokenToLatentSettings:
    layer: int
    prompt: str


@dataclass(frozen=True)
class LatentToLogitSettings:
    layer: int
    prompt: str
    answer: str
    k: int


@dataclass(frozen=True)
class InductionSettings:
    layer_from: int
    layer_to: int
    seq_len: int
    # Token ids the random repeated sequence is drawn from; None means the whole vocabulary.
    token_pool: tuple[int, ...] | None
    prev_token_heads: tuple[tuple[int, int], ...]
    induction_heads: tuple[tuple[int, int], ...]

    def repeated_tokens(self, model: HookedSAETransformer, seed: int = 0) -> torch.Tensor:
        """BOS, then `seq_len` random tokens, then the same tokens again: shape (1, 2 * seq_len + 1)."""
        generator = torch.Generator().manual_seed(seed)
        if self.token_pool is None:
            half = torch.randint(0, model.cfg.d_vocab, (self.seq_len,), generator=generator)
        else:
            pool = torch.tensor(self.token_pool)
            half = pool[torch.randperm(len(pool), generator=generator)[: self.seq_len]]
        bos = torch.tensor([model.tokenizer.bos_token_id])
        return torch.cat([bos, half, half]).unsqueeze(0).to(model.cfg.device)


@dataclass(frozen=True)
class ExerciseSettings:
    latent_to_latent: LatentToLatentSettings
    token_to_latent: TokenToLatentSettings
    latent_to_logit: LatentToLogitSettings
    induction: InductionSettings

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> ExerciseSettings:
        attn = dict(settings["attn"])
        pool = attn.pop("token_pool", None)
        return cls(
            latent_to_latent=LatentToLatentSettings(**settings["latent_to_latent"]),
            token_to_latent=TokenToLatentSettings(**settings["token_to_latent"]),
            latent_to_logit=LatentToLogitSettings(**settings["latent_to_logit"]),
            induction=InductionSettings(
                token_pool=None if pool is None else tuple(pool),
                prev_token_heads=tuple(tuple(head) for head in attn.pop("prev_token_heads")),
                induction_heads=tuple(tuple(head) for head in attn.pop("induction_heads")),
                **attn,
            ),
        )

    @property
    def residual_layers(self) -> tuple[int, ...]:
        """The residual-stream SAE layers the exercises use."""
        layers = {
            self.latent_to_latent.layer_from,
            self.latent_to_latent.layer_to,
            self.token_to_latent.layer,
            self.latent_to_logit.layer,
        }
        return tuple(sorted(layers))

    @property
    def attention_layers(self) -> tuple[int, ...]:
        return (self.induction.layer_from, self.induction.layer_to)


GPT2_EXERCISES = ExerciseSettings(
    latent_to_latent=LatentToLatentSettings(layer_from=0, layer_to=3, prompt="The Eiffel tower is in Paris"),
    token_to_latent=TokenToLatentSettings(layer=3, prompt="The Eiffel tower is in Paris"),
    latent_to_logit=LatentToLogitSettings(layer=9, prompt="The Eiffel tower is in the city of", answer=" Paris", k=25),
    induction=InductionSettings(
        layer_from=4,
        layer_to=5,
        seq_len=10,
        token_pool=None,
        prev_token_heads=((4, 11),),
        induction_heads=((5, 1), (5, 5), (5, 8)),
    ),
)


class LazySAEs(Mapping[int, SAE]):
    """SAEs by layer, each loaded the first time it is asked for (SAE files can be hundreds of MB)."""

    def __init__(self, layers: Iterable[int], load: Callable[[int], SAE], description: str):
        self._layers = tuple(layers)
        self._load = load
        self._loaded: dict[int, SAE] = {}
        self.description = description

    def __getitem__(self, layer: int) -> SAE:
        if layer not in self._layers:
            raise KeyError(f"No {self.description} SAE for layer {layer}; this world has layers {list(self._layers)}.")
        if layer not in self._loaded:
            self._loaded[layer] = self._load(layer)
        return self._loaded[layer]

    def __iter__(self) -> Iterator[int]:
        return iter(self._layers)

    def __len__(self) -> int:
        return len(self._layers)

    @property
    def loaded_layers(self) -> tuple[int, ...]:
        return tuple(sorted(self._loaded))

    def preload(self, layers: Iterable[int]) -> None:
        """Load these layers now, with a progress bar (downloads can be slow)."""
        missing = [layer for layer in layers if layer not in self._loaded]
        for layer in tqdm(missing, desc=f"Loading {self.description} SAEs", disable=not missing):
            self[layer]


@dataclass
class World:
    name: str
    model: HookedSAETransformer
    saes: Mapping[int, SAE]
    attn_saes: Mapping[int, SAE]
    exercises: ExerciseSettings
    description: str
    facts: Mapping[str, Any] = field(default_factory=dict)
    # Texts the world's model was trained on, for the offline latent cards' top activating contexts.
    corpus: Callable[[], list[str]] | None = None

    def banner(self) -> str:
        cfg = self.model.cfg
        return (
            f"World: {self.name} ({self.description})\n"
            f"  model: {cfg.n_layers} layers, d_model {cfg.d_model}, d_vocab {cfg.d_vocab}, on {cfg.device}\n"
            f"  residual SAEs at layers {list(self.saes)}; attention SAEs at layers {list(self.attn_saes)}"
        )


class WorldUnavailable(RuntimeError):
    """The world asked for cannot be loaded here (no network, no cached files)."""


# Which exercise settings go with which model, so that checks given only (model, saes) can find the
# layers and prompts of the world the model came from. Weak keys: a world dropped by the learner is
# not kept alive by this table.
_SETTINGS_OF_MODEL: weakref.WeakKeyDictionary[HookedSAETransformer, ExerciseSettings] = weakref.WeakKeyDictionary()


_current_world: weakref.ref[World] | None = None


def register(world: World) -> World:
    """Remember `world` as the one in use, and which settings go with its model."""
    global _current_world
    _SETTINGS_OF_MODEL[world.model] = world.exercises
    _current_world = weakref.ref(world)
    return world


def current_world() -> World | None:
    """The world loaded last (e.g. for `display_dashboard`), if it is still alive."""
    return None if _current_world is None else _current_world()


def exercise_settings(model: HookedSAETransformer) -> ExerciseSettings:
    """The layers and prompts of the world `model` belongs to (GPT-2's for a model loaded elsewhere)."""
    settings = _SETTINGS_OF_MODEL.get(model)
    if settings is not None:
        return settings
    if model.cfg.n_layers >= 10:
        return GPT2_EXERCISES
    raise LookupError(
        "This model was not loaded with part_utils.load_world(), so the checks do not know which layers and "
        "prompts to use. Load your model with `world = load_world(...)` and pass `world.model`."
    )


def requested_world_name(name: str | None = None) -> str:
    name = (os.environ.get(GRADING_WORLD_ENV) or name or os.environ.get(WORLD_ENV) or "auto").lower()
    if name not in WORLD_NAMES:
        raise ValueError(f"Unknown world {name!r}: choose one of {', '.join(WORLD_NAMES)} (argument or ${WORLD_ENV}).")
    return name


def load_world(name: str | None = None, device: torch.device | str | None = None, verbose: bool = True) -> World:
    """Load a world by name (`auto`, `gpt2`, `toy`, `random`) and print a banner saying which one it is."""
    from part_utils.device import get_device

    device = torch.device(device) if device is not None else get_device()
    name = requested_world_name(name)
    world = None
    if name in ("auto", "gpt2"):
        from part_utils import gpt2_world

        probed = gpt2_world.availability()  # the network is probed once per load_world
        if name == "auto" and probed[0] is not None:
            name = "toy"
            if verbose:
                print(f"GPT-2 is not available ({probed[0]}), so the course runs on the offline toy world.")
        elif name == "auto":
            try:
                world = gpt2_world.load_gpt2_world(device, probed)
            except WorldUnavailable as error:  # e.g. a download that broke partway
                name = "toy"
                print(f"{error}\nSo the course runs on the offline toy world instead.")
        else:
            world = gpt2_world.load_gpt2_world(device, probed)
    if world is not None:
        pass  # GPT-2, loaded above
    elif name == "toy":
        world = load_toy_world(device)
    else:
        from part_utils.random_world import TINY_SHAPE, build_random_world

        world = build_random_world(TINY_SHAPE, seed=0, device=device)
    if verbose:
        print(world.banner())
    return register(world)


def load_toy_world(device: torch.device | str = "cpu") -> World:
    from part_utils.observations import toy_observations
    from part_utils.toy_corpus import fact_sentences
    from part_utils.toy_world import load_toy_world_parts

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
        corpus=fact_sentences,
    )
