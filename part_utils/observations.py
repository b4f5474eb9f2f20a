"""The expected observations of each exercise, for the world in use."""

from __future__ import annotations

from part_utils.worlds import World


def show_observations(world: World, exercise: str) -> None:
    """Print what this world shows in `exercise` (measured when the world was built), if it is known.

    `exercise` is one of "latent_to_latent", "token_to_latent", "latent_to_logit", "induction".
    """
    observations = world.facts.get(exercise, {}).get("observations", [])
    if observations:
        for line in observations:
            print(f"• {line}")
    elif world.name == "gpt2":
        print("GPT-2's expected figures are in the text above.")
    else:
        print(f"The {world.name} world has no recorded observations: its weights are random, so the pictures are noise.")
