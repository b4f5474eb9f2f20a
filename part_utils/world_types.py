"""What a world is: a model, its SAEs, and the settings (layers, prompts) each exercise uses there.

Only types live here; `part_utils.worlds` picks and loads a world, and each world's module builds
its own (`gpt2_world`, `toy_world`, `random_world`).

A `World` attaches its exercise settings to the model it holds (`settings_of(model)` reads them
back), so that a learner check given only `(fn, model, saes)` finds the layers and prompts of the
world the model came from, whatever code built that world.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from sae_lens import SAE, HookedSAETransformer
from tqdm.auto import tqdm


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
    """The prompt whose final-position logits the exercise differentiates, at one residual SAE layer.

    `answer` is the expected prediction and `contrast` another answer of the same kind (another city):
    the logit difference between them is a metric, where the raw logit is not (a constant added to
    every logit changes no prediction). `reference_prompts` are prompts of the same form about other
    things, over which a latent's mean activation is taken for mean-ablation."""

    layer: int
    prompt: str
    answer: str
    k: int
    contrast: str
    reference_prompts: tuple[str, ...]

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> LatentToLogitSettings:
        return cls(**{**settings, "reference_prompts": tuple(settings["reference_prompts"])})


@dataclass(frozen=True)
class AttentionSettings:
    layer_from: int
    layer_to: int
    seq_len: int
    # Token ids the random repeated sequence is drawn from; None means the whole vocabulary.
    token_pool: tuple[int, ...] | None
    prev_token_heads: tuple[tuple[int, int], ...]
    induction_heads: tuple[tuple[int, int], ...]

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> AttentionSettings:
        settings = dict(settings)
        pool = settings.pop("token_pool", None)
        return cls(
            token_pool=None if pool is None else tuple(pool),
            prev_token_heads=tuple(tuple(head) for head in settings.pop("prev_token_heads")),
            induction_heads=tuple(tuple(head) for head in settings.pop("induction_heads")),
            **settings,
        )

    def repeated_tokens(self, model: HookedSAETransformer, seed: int = 0, n_seqs: int = 1) -> torch.Tensor:
        """BOS, then `seq_len` random tokens, then the same tokens again: shape (n_seqs, 2 * seq_len + 1)."""
        generator = torch.Generator().manual_seed(seed)

        def half() -> torch.Tensor:
            if self.token_pool is None:
                return torch.randint(0, model.cfg.d_vocab, (self.seq_len,), generator=generator)
            pool = torch.tensor(self.token_pool)
            return pool[torch.randperm(len(pool), generator=generator)[: self.seq_len]]

        halves = torch.stack([half() for _ in range(n_seqs)])
        bos = torch.full((n_seqs, 1), model.tokenizer.bos_token_id)
        return torch.cat([bos, halves, halves], dim=1).to(model.cfg.device)


@dataclass(frozen=True)
class CircuitSettings:
    """The capstone's circuit: the residual SAE layers it runs through, the prompt whose top prediction it
    explains, and how many latents it keeps per layer."""

    layers: tuple[int, ...]
    prompt: str
    k: int


# Latents the circuit keeps per layer: a picture a learner can read, and enough to move the prediction.
CIRCUIT_K = 4


@dataclass(frozen=True)
class ExerciseSettings:
    """Per gradient exercise (a field named as the exercise in `tests.exercises`), its settings in one world.

    The capstone's settings (`latent_circuit`) are not stored: it is derived from the other exercises' settings (their
    residual layers, and the latent-to-logit prompt), so every world has one without new files or
    downloads, and a world built with `dataclasses.replace` gets its own."""

    latent_to_latent: LatentToLatentSettings
    token_to_latent: TokenToLatentSettings
    latent_to_logit: LatentToLogitSettings
    attention: AttentionSettings
    latent_circuit: CircuitSettings = field(init=False)

    def __post_init__(self) -> None:
        circuit = CircuitSettings(layers=self.residual_layers, prompt=self.latent_to_logit.prompt, k=CIRCUIT_K)
        object.__setattr__(self, "latent_circuit", circuit)

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> ExerciseSettings:
        return cls(
            latent_to_latent=LatentToLatentSettings(**settings["latent_to_latent"]),
            token_to_latent=TokenToLatentSettings(**settings["token_to_latent"]),
            latent_to_logit=LatentToLogitSettings.from_dict(settings["latent_to_logit"]),
            attention=AttentionSettings.from_dict(settings["attention"]),
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
        return (self.attention.layer_from, self.attention.layer_to)


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


# The model attribute a World stores its exercise settings in. A plain attribute, not a buffer: it
# travels with the model (a deep copy keeps it) and is gone with it.
_SETTINGS_ATTRIBUTE = "latent_gradients_exercises"


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

    def __post_init__(self) -> None:
        setattr(self.model, _SETTINGS_ATTRIBUTE, self.exercises)

    def banner(self) -> str:
        cfg = self.model.cfg
        return (
            f"World: {self.name} ({self.description})\n"
            f"  model: {cfg.n_layers} layers, d_model {cfg.d_model}, d_vocab {cfg.d_vocab}, on {cfg.device}\n"
            f"  residual SAEs at layers {list(self.saes)}; attention SAEs at layers {list(self.attn_saes)}"
        )


def settings_of(model: HookedSAETransformer) -> ExerciseSettings | None:
    """The exercise settings of the world `model` belongs to, or None for a model no World holds."""
    return getattr(model, _SETTINGS_ATTRIBUTE, None)


class WorldUnavailable(RuntimeError):
    """The world asked for cannot be loaded here (no network, no cached files)."""
