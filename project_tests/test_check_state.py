"""State hygiene: after a check, the model and SAEs are exactly as before, whatever the learner did.

A learner function that adds hooks, attaches SAEs, sets use_error_term, switches gradients off,
puts the model in training mode or changes requires_grad, and then either raises or returns the
right answer, leaves no trace after the check; and the learner is told what their function changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import torch
from sae_lens import SAE, HookedSAETransformer

import solutions
import tests as checks
from course_fixtures.catalogue import EXERCISES, reference_name, run_check
from part_utils.circuit import Circuit
from part_utils.world_types import World

# Every check that runs on a world: the gradient exercises and their intermediate functions.
GRADIENT_EXERCISES = [name for name, target in EXERCISES.items() if target.reference is not None]
# The same, with the intermediate functions' checks in the slow tier: the fast tier keeps one check per exercise.
EXERCISES_FAST_INTERMEDIATES_SLOW = [
    pytest.param(name, marks=pytest.mark.slow) if EXERCISES[name].intermediate else name for name in GRADIENT_EXERCISES
]


def _saes(world: World, exercise: str) -> list:
    return list(getattr(world, EXERCISES[exercise].sae_map).values())


def _state(world: World, exercise: str) -> dict[str, Any]:
    model, saes = world.model, _saes(world, exercise)
    points = {**model.hook_dict, **{f"sae{i}.{n}": p for i, sae in enumerate(saes) for n, p in sae.hook_dict.items()}}
    modules = [model, *saes]
    return {
        "grad_enabled": torch.is_grad_enabled(),
        "training": [m.training for m in modules],
        "hooks": {name: (len(p.fwd_hooks), len(p.bwd_hooks), len(p._forward_hooks), len(p._backward_hooks)) for name, p in points.items()},
        "ctx": {name: dict(p.ctx) for name, p in points.items() if p.ctx},
        "attached_saes": sorted(model._acts_to_saes),
        "use_error_term": [sae.use_error_term for sae in saes],
        "requires_grad": [p.requires_grad for m in modules for p in m.parameters()],
        "parameters": [p.detach().clone() for m in modules for p in m.parameters()],
    }


def _assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    for key in before:
        if key == "parameters":
            assert all(torch.equal(a, b) for a, b in zip(before[key], after[key])), "parameters changed"
        else:
            assert before[key] == after[key], key


def _leaky(exercise: str, then: Callable[..., Any]) -> Callable[..., Any]:
    """A learner function that leaves every kind of state behind, then calls `then(*args)`."""

    def learner_fn(*args: Any) -> Any:
        result = then(*args)
        # The first SAE and the model the function was given, wherever the exercise's signature puts them (the
        # capstone is given the SAEs by layer).
        sae_from = next(arg if isinstance(arg, SAE) else arg[min(args[3])] for arg in args if isinstance(arg, (SAE, Mapping)))
        model = next(arg for arg in args if isinstance(arg, HookedSAETransformer))
        sae_from.use_error_term = True
        model.add_hook(sae_from.cfg.metadata.hook_name.replace("hook_z", "hook_pattern"), lambda x, hook: None)
        model.add_hook("blocks.0.hook_resid_post", lambda x, hook: None, dir="bwd")
        sae_from.hook_sae_acts_post.add_hook(lambda x, hook: None)
        model.hook_dict["blocks.1.hook_resid_pre"].ctx["stash"] = 1
        model.add_sae(sae_from)
        model.train()
        model.W_U.requires_grad_(False)
        torch.set_grad_enabled(False)
        return result

    return learner_fn


def _raise(*args: Any) -> Any:
    raise RuntimeError("learner bug")


@pytest.mark.parametrize("exercise", EXERCISES_FAST_INTERMEDIATES_SLOW)
def test_state_is_restored_when_the_function_raises(exercise: str, fresh_world: World) -> None:
    before = _state(fresh_world, exercise)
    with pytest.raises(checks.CheckFailed) as failure:
        run_check(exercise, _leaky(exercise, _raise), fresh_world)
    _assert_same(before, _state(fresh_world, exercise))
    assert "raised RuntimeError" in str(failure.value) and "learner bug" in str(failure.value)


@pytest.mark.slow  # every check twice, with a learner that leaves everything behind
@pytest.mark.parametrize("exercise", GRADIENT_EXERCISES)
def test_leaked_state_is_undone_and_reported(exercise: str, fresh_world: World) -> None:
    before = _state(fresh_world, exercise)
    reference = getattr(solutions, reference_name(exercise))
    with pytest.raises(checks.CheckFailed) as failure:
        run_check(exercise, _leaky(exercise, reference), fresh_world)
    _assert_same(before, _state(fresh_world, exercise))
    message = str(failure.value)
    assert "your results are right, but your function changed the model or SAEs" in message
    for words in ("use_error_term=True", "left hooks", "attached", "gradient computation off", "training mode", "requires_grad"):
        assert words in message, words


@pytest.mark.slow  # every check twice, with a learner that leaves everything behind
@pytest.mark.parametrize("exercise", GRADIENT_EXERCISES)
def test_wrong_results_and_leaked_state_are_both_reported(exercise: str, fresh_world: World) -> None:
    before = _state(fresh_world, exercise)
    reference = getattr(solutions, reference_name(exercise))

    def off_by_a_bit(*args: Any) -> Any:
        result = reference(*args)
        if isinstance(result, Circuit):
            return dataclasses.replace(result, edges=tuple(dataclasses.replace(e, weight=e.weight * 1.01) for e in result.edges))
        grads, *rest = result
        return (grads * 1.01, *rest)

    with pytest.raises(checks.CheckFailed) as failure:
        run_check(exercise, _leaky(exercise, off_by_a_bit), fresh_world)
    _assert_same(before, _state(fresh_world, exercise))
    message = str(failure.value)
    assert "differs from the reference" in message and "also changed the model or SAEs" in message


@pytest.mark.parametrize("exercise", EXERCISES_FAST_INTERMEDIATES_SLOW)
def test_smoke_the_reference_passes_and_leaves_state_untouched(exercise: str, fresh_world: World, capsys: pytest.CaptureFixture[str]) -> None:
    fresh_world.saes[next(iter(fresh_world.saes))].use_error_term  # noqa: B018 (SAEs loaded before the snapshot)
    before = _state(fresh_world, exercise)
    run_check(exercise, getattr(solutions, reference_name(exercise)), fresh_world)
    _assert_same(before, _state(fresh_world, exercise))
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("exercise", EXERCISES_FAST_INTERMEDIATES_SLOW)
def test_checks_compare_in_full_float32_and_restore_the_callers_precision(exercise: str, tiny_world: World) -> None:
    """A learner who turned TF32 on (matmul precision "high") is checked in full float32, and keeps their setting."""
    reference = getattr(solutions, reference_name(exercise))
    seen = []

    def learner(*args: Any) -> Any:
        seen.append(torch.get_float32_matmul_precision())
        result = reference(*args)
        torch.set_float32_matmul_precision("medium")  # a setting changed inside the function is undone too
        return result

    torch.set_float32_matmul_precision("high")
    try:
        run_check(exercise, learner, tiny_world)
        assert seen and set(seen) == {"highest"}  # some checks call the function more than once
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision("highest")


@pytest.mark.slow  # a check whose learner changes the weights in place
def test_in_place_weight_changes_are_reported(fresh_world: World) -> None:
    def scribbles(tokens: Any, sae_from: Any, sae_to: Any, model: Any) -> Any:
        result = solutions.latent_to_latent_gradients(tokens, sae_from, sae_to, model)
        with torch.no_grad():
            sae_to.b_enc.add_(0.0)
        return result

    with pytest.raises(checks.CheckFailed, match="modified model or SAE weights in place"):
        run_check("latent_to_latent", scribbles, fresh_world)
