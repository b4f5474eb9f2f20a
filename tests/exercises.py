"""The exercise table: the one place that lists the course's exercises and says, for each,

- its one name: the pytest marker, the notebook's `exercise=` tag, the prefix of its graded cells' ids
  (`attention-gradients`) and, for an exercise with settings of its own, the `ExerciseSettings` field;
- its settings: the `ExerciseSettings` field its check reads in every world (its own, or another
  exercise's whose layers and prompts it shares; None for an exercise that needs no world), and so
  their type; its reference solution, its straightforward formulation (the independent second
  implementation the project's tests and the benchmark compare with) and its learner check;
- its graded parts with their points, and how the hidden grading tests draw the check's arguments (other
  prompts, layers, k, sequence seed) from the instructor's secret (`grading.grader.hidden_params`).

Everything that lists exercises reads this table (the checks package, the project's tests and
markers); it lives beside the checks because it names them (notebooks -> tests -> solutions -> part_utils).
"""

from __future__ import annotations

import random
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import solutions
from part_utils.world_types import ExerciseSettings, World
from solutions import straightforward
from tests.attention import test_latent_to_latent_gradients_attn
from tests.attribution import test_attribution_and_ablation
from tests.intermediate import (
    test_latent_acts_to_later_latent_acts,
    test_latent_acts_to_later_latent_acts_attn,
    test_latent_acts_to_logits,
    test_tokens_to_latent_acts,
)
from tests.latent_circuit import test_latent_circuit
from tests.latent_to_latent import test_latent_to_latent_gradients
from tests.latent_to_logit import test_latent_to_logit_gradients
from tests.sparse_tensor import test_sparse_tensor
from tests.token_to_latent import test_token_to_latent_gradients


@dataclass(frozen=True)
class Exercise:
    name: str
    title: str
    # The ExerciseSettings field the check reads (None: the exercise needs no world).
    settings: str | None
    reference: Callable[..., Any]
    straightforward: Callable[..., Any] | None
    check: Callable[..., None]
    # Checks of the spec's intermediate functions the exercise is built from (ungraded; the notebook calls
    # each right after the learner writes that function).
    intermediate_checks: tuple[Callable[..., None], ...]
    # Which of the world's SAE maps the check takes after the model ("saes" or "attn_saes"); None: no world.
    sae_map: str | None
    # Graded part (the check's `part=`) -> points.
    parts: Mapping[str, int]
    # Draws the check's keyword arguments on the hidden grading world from the grader's seeded generator,
    # given the prompts to choose from and the world's number of layers.
    draw_hidden: Callable[[random.Random, tuple[str, ...], int], dict[str, Any]]
    # How big a result of the reference is, {"shape": [...], "gradient": total |weight|}: a hidden test can
    # only fail a wrong function when both are non-zero (`grading.grader.hidden_params.non_trivial`). None:
    # every draw can fail (SparseTensor's cases each have active entries or test that there are none).
    result_size: Callable[[Any], dict[str, Any]] | None = None

    @property
    def settings_type(self) -> type | None:
        return None if self.settings is None else typing.get_type_hints(ExerciseSettings)[self.settings]

    @property
    def points(self) -> int:
        return sum(self.parts.values())

    def run_check(self, fn: Any, world: World, **kwargs: Any) -> None:
        """Run this exercise's learner check on `fn` in `world` (raises `CheckFailed` when it fails)."""
        if self.sae_map is None:
            self.check(fn, **kwargs)
        else:
            self.check(fn, world.model, getattr(world, self.sae_map), **kwargs)


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


def _layer_pair(rng: random.Random, n_layers: int) -> dict[str, int]:
    layer_from, layer_to = sorted(rng.sample(range(n_layers), 2))
    return {"layer_from": layer_from, "layer_to": layer_to}


def _hidden_sparse_tensor(rng: random.Random, prompts: tuple[str, ...], n_layers: int) -> dict[str, Any]:
    return {"seed": rng.randrange(2**31)}


def _hidden_latent_to_latent(rng: random.Random, prompts: tuple[str, ...], n_layers: int) -> dict[str, Any]:
    return {"prompt": rng.choice(prompts), **_layer_pair(rng, n_layers)}


def _hidden_token_to_latent(rng: random.Random, prompts: tuple[str, ...], n_layers: int) -> dict[str, Any]:
    return {"prompt": rng.choice(prompts), "layer": rng.randrange(n_layers)}


def _hidden_latent_to_logit(rng: random.Random, prompts: tuple[str, ...], n_layers: int) -> dict[str, Any]:
    # k from 3 to 10: several logits, never the visible check's whole top set.
    return {"prompt": rng.choice(prompts), "layer": rng.randrange(n_layers), "k": rng.randrange(3, 11)}


def _hidden_attribution(rng: random.Random, prompts: tuple[str, ...], n_layers: int) -> dict[str, Any]:
    return {"prompt": rng.choice(prompts), "layer": rng.randrange(n_layers)}


def _hidden_attention(rng: random.Random, prompts: tuple[str, ...], n_layers: int) -> dict[str, Any]:
    return {"seed": rng.randrange(10_000), **_layer_pair(rng, n_layers)}


def _hidden_circuit(rng: random.Random, prompts: tuple[str, ...], n_layers: int) -> dict[str, Any]:
    # Two or three layers, increasing; k from 2 to 5: never the visible check's layers and k together.
    layers = sorted(rng.sample(range(n_layers), rng.choice((2, 3))))
    return {"prompt": rng.choice(prompts), "layers": layers, "k": rng.randrange(2, 6)}


def _jacobian_size(result: Any) -> dict[str, Any]:
    """A gradient exercise's result begins with its Jacobian."""
    gradients = result[0].detach()
    return {"shape": list(gradients.shape), "gradient": float(gradients.abs().sum())}


def _attribution_size(result: Any) -> dict[str, Any]:
    """The estimates, latents by metrics, and how far they and the effects are from zero."""
    estimates, effects = (part.detach() for part in result)
    return {"shape": list(estimates.shape), "gradient": float(estimates.abs().sum() + effects.abs().sum())}


def _circuit_size(circuit: Any) -> dict[str, Any]:
    """A circuit's latents on one side, its edges on the other, and their weights."""
    return {"shape": [len(circuit.latents()), len(circuit.edges)], "gradient": sum(abs(edge.weight) for edge in circuit.edges)}


# In the order the course teaches them.
EXERCISES: tuple[Exercise, ...] = (
    Exercise(
        name="sparse_tensor",
        title="exercise 1, SparseTensor",
        settings=None,
        reference=solutions.SparseTensor,
        straightforward=None,
        check=test_sparse_tensor,
        intermediate_checks=(),
        sae_map=None,
        parts=_frozen({"from_dense": 1, "from_sparse": 1}),
        draw_hidden=_hidden_sparse_tensor,
    ),
    Exercise(
        name="latent_to_latent",
        title="exercises 2-3, latent-to-latent gradients",
        settings="latent_to_latent",
        reference=solutions.latent_to_latent_gradients,
        straightforward=straightforward.latent_to_latent_gradients,
        check=test_latent_to_latent_gradients,
        intermediate_checks=(test_latent_acts_to_later_latent_acts,),
        sae_map="saes",
        parts=_frozen({"activations": 1, "gradients": 2}),
        draw_hidden=_hidden_latent_to_latent,
        result_size=_jacobian_size,
    ),
    Exercise(
        name="token_to_latent",
        title="exercise 4, token-to-latent gradients",
        settings="token_to_latent",
        reference=solutions.token_to_latent_gradients,
        straightforward=straightforward.token_to_latent_gradients,
        check=test_token_to_latent_gradients,
        intermediate_checks=(test_tokens_to_latent_acts,),
        sae_map="saes",
        parts=_frozen({"activations": 1, "gradients": 1}),
        draw_hidden=_hidden_token_to_latent,
        result_size=_jacobian_size,
    ),
    Exercise(
        name="latent_to_logit",
        title="exercise 5, latent-to-logit gradients",
        settings="latent_to_logit",
        reference=solutions.latent_to_logit_gradients,
        straightforward=straightforward.latent_to_logit_gradients,
        check=test_latent_to_logit_gradients,
        intermediate_checks=(test_latent_acts_to_logits,),
        sae_map="saes",
        parts=_frozen({"activations": 1, "gradients": 1}),
        draw_hidden=_hidden_latent_to_logit,
        result_size=_jacobian_size,
    ),
    Exercise(
        name="attribution",
        title="exercise 5b, is the attribution true? (estimate against ablation)",
        settings="latent_to_logit",
        reference=solutions.attribution_and_ablation,
        straightforward=None,
        check=test_attribution_and_ablation,
        intermediate_checks=(),
        sae_map="saes",
        parts=_frozen({"estimates": 1, "effects": 1}),
        draw_hidden=_hidden_attribution,
        result_size=_attribution_size,
    ),
    Exercise(
        name="attention",
        title="exercise 6, attention-SAE gradients (the induction circuit)",
        settings="attention",
        reference=solutions.latent_to_latent_gradients_attn,
        straightforward=straightforward.latent_to_latent_gradients_attn,
        check=test_latent_to_latent_gradients_attn,
        intermediate_checks=(test_latent_acts_to_later_latent_acts_attn,),
        sae_map="attn_saes",
        parts=_frozen({"activations": 1, "gradients": 2}),
        draw_hidden=_hidden_attention,
        result_size=_jacobian_size,
    ),
    Exercise(
        name="latent_circuit",
        title="exercise 7, a circuit for one prediction (capstone)",
        settings="latent_circuit",
        reference=solutions.latent_circuit,
        straightforward=straightforward.latent_circuit,
        check=test_latent_circuit,
        intermediate_checks=(),
        sae_map="saes",
        parts=_frozen({"nodes": 1, "edges": 1}),
        draw_hidden=_hidden_circuit,
        result_size=_circuit_size,
    ),
)
BY_NAME: Mapping[str, Exercise] = MappingProxyType({exercise.name: exercise for exercise in EXERCISES})
