"""Picking and loading a world: a model, its SAEs, and the layers and prompts each exercise uses.

Every exercise runs unchanged in every world; only the world's own layers, prompts and latent ids
differ: `gpt2` (GPT-2 small and the `gpt2-small-res-jb` and `gpt2-small-hook-z-kk` SAE releases, only
the SAEs the exercises use), `toy` (a small model trained for the course, shipped with it) and `random`
(seeded random weights at any size, for the tests, the hidden grading tests and the benchmark).

`load_world()` picks one by argument, else by the `LATENT_GRADIENTS_WORLD` environment variable, else
`auto`: GPT-2 when Hugging Face can be reached (or its files are cached), the toy world otherwise. The
autograder's `LATENT_GRADIENTS_GRADING_WORLD` overrides all of these. The types (`World`,
`ExerciseSettings`, ...) are in `part_utils.world_types`; each world's module builds its own.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Sequence

import torch

from part_utils import gpt2_world, random_world, toy_world
from part_utils.device import get_device
from part_utils.settings import GRADING_WORLD_ENV, WORLD_ENV, world
from part_utils.world_types import World, WorldUnavailable

WORLD_NAMES = ("auto", "gpt2", "toy", "random")

# The world loaded last, for helpers a learner calls without one (`display_dashboard`). Weak: a world
# the learner drops is not kept alive. The checks never read it: a World carries its own settings.
_current_world: weakref.ref[World] | None = None


def current_world() -> World | None:
    """The world `load_world()` loaded last, if it is still alive."""
    return None if _current_world is None else _current_world()


def note_unseen_tokens(str_toks: Sequence[str]) -> None:
    """Print one line when the loaded world never trained on some of these tokens, naming prompts it knows.

    A token the world never trained on has an all-zero embedding (the toy world keeps only its corpus's
    vocabulary), so every gradient through it describes nothing the model learned.
    """
    world = current_world()
    if world is None:
        return
    model = world.model
    unseen = []
    for str_tok in dict.fromkeys(str_toks):
        try:
            token = model.to_single_token(str_tok)
        except (AssertionError, KeyError, ValueError):  # not one token of this tokenizer: nothing to say about it
            continue
        if not model.W_E[token].any():
            unseen.append(str_tok)
    if unseen:
        known = dict.fromkeys([world.exercises.latent_to_latent.prompt, world.exercises.latent_to_logit.prompt])
        print(
            f"Note: the {world.name} world never saw {', '.join(map(repr, unseen))} in training, so its gradients on this prompt "
            f"describe nothing it learned. Prompts it knows: {'; '.join(map(repr, known))}; its landmarks are listed by "
            "show_observations(world, 'world')."
        )


def requested_world_name(name: str | None = None) -> str:
    name = (os.environ.get(GRADING_WORLD_ENV) or name or world()).lower()
    if name not in WORLD_NAMES:
        raise ValueError(f"Unknown world {name!r}: choose one of {', '.join(WORLD_NAMES)} (argument or ${WORLD_ENV}).")
    return name


def load_world(name: str | None = None, device: torch.device | str | None = None, verbose: bool = True) -> World:
    """Load a world by name (`auto`, `gpt2`, `toy`, `random`) and print a banner saying which one it is."""
    global _current_world
    device = torch.device(device) if device is not None else get_device()
    name = requested_world_name(name)
    world = None
    if name in ("auto", "gpt2"):
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
    if world is None and name == "toy":
        world = toy_world.load_toy_world(device)
    elif world is None:
        world = random_world.build_random_world(random_world.TINY_SHAPE, seed=0, device=device)
    if verbose:
        print(world.banner())
    _current_world = weakref.ref(world)
    return world
