"""Jacobians whose active latents differ by a rounding error (tests/_compare.py), through the learner checks.

A correct learner's encoder can round a pre-activation of ~1e-7 up where the reference rounds it down,
so one side has a latent, and a Jacobian column, that the other lacks. On an H200 this happened at
GPT-2's shape for latent_to_logit (275 active latents against 276). The checks must accept that, and
still reject a latent with a real activation that only one side has.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

import solutions
import tests as checks
from part_utils.world_types import World
from tests.exercises import BY_NAME

# Where each exercise's result holds the SparseTensor that labels the Jacobian's last axis.
LATENTS_AT = {"latent_to_logit": 4, "token_to_latent": 1}
IGNORED = 1e3  # the extra latent's Jacobian entries: far off, so a check that compared them would fail


def with_one_more_latent(exercise: str, activation: float) -> Callable[..., Any]:
    """The reference, with one inactive latent turned on at `activation` (relative to the largest) and its column added."""
    reference, at = BY_NAME[exercise].reference, LATENTS_AT[exercise]

    def learner(*args: Any) -> tuple:
        result = list(reference(*args))
        grads, acts = result[0], result[at]
        dense = acts.dense.detach().clone()
        inactive = tuple((dense == 0).nonzero()[0].tolist())
        dense[inactive] = activation * float(dense.max())
        extended = solutions.SparseTensor.from_dense(dense)
        column = [tuple(index) for index in extended.sparse[1].tolist()].index(inactive)
        extra = torch.full_like(grads[..., :1], IGNORED)
        result[0], result[at] = torch.cat([grads[..., :column], extra, grads[..., column:]], dim=-1), extended
        return tuple(result)

    return learner


@pytest.mark.parametrize("exercise", sorted(LATENTS_AT))
def test_a_latent_active_by_a_rounding_error_is_ignored(exercise: str, tiny_world: World) -> None:
    BY_NAME[exercise].run_check(with_one_more_latent(exercise, 1e-7), tiny_world)


@pytest.mark.parametrize("exercise", sorted(LATENTS_AT))
def test_a_latent_with_a_real_activation_in_one_only_fails(exercise: str, tiny_world: World) -> None:
    with pytest.raises(checks.CheckFailed):
        BY_NAME[exercise].run_check(with_one_more_latent(exercise, 0.5), tiny_world)


@pytest.mark.parametrize("exercise", sorted(LATENTS_AT))
def test_a_jacobian_that_does_not_fit_its_own_latents_is_named(exercise: str, tiny_world: World) -> None:
    """One column too many for the latents returned: the message says what a row and a column stand for."""
    reference = BY_NAME[exercise].reference

    def learner(*args: Any) -> tuple:
        grads, *rest = reference(*args)
        return (torch.cat([grads, grads[..., :1]], dim=-1), *rest)

    with pytest.raises(checks.CheckFailed, match="one column per active latent"):
        BY_NAME[exercise].run_check(learner, tiny_world)
