"""The exercise table (tests/exercises.py) is the one list of exercises, and everything else agrees with it.

Also: a world's exercise settings travel with its model, so the checks find them with no registry.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import nbformat
import pytest

import solutions
import tests as checks
from grading import cell_metadata
from part_utils.random_world import HIDDEN_SHAPE, TINY_SHAPE, build_random_world
from part_utils.world_types import ExerciseSettings, World
from solutions import straightforward
from tests._exercise import exercise_settings, world_settings

ROOT = Path(__file__).resolve().parent.parent
NBGRADER_SOURCE = ROOT / "nbgrader" / "source" / "latent_gradients" / "latent_gradients.ipynb"


def test_settings_fields_are_the_settings_the_exercises_read() -> None:
    """Every ExerciseSettings field is read by a check and named after the exercise it belongs to."""
    fields = [field.name for field in dataclasses.fields(ExerciseSettings)]
    assert set(fields) == {exercise.settings for exercise in checks.EXERCISES if exercise.settings is not None}
    assert set(fields) <= set(checks.BY_NAME)
    for exercise in checks.EXERCISES:
        if exercise.settings is not None:
            assert dataclasses.is_dataclass(exercise.settings_type)


def test_checks_and_solutions_are_exported_under_their_names() -> None:
    for exercise in checks.EXERCISES:
        assert getattr(checks, exercise.check.__name__) is exercise.check
        assert getattr(solutions, exercise.reference.__name__) is exercise.reference
        if exercise.straightforward is not None:
            assert getattr(straightforward, exercise.straightforward.__name__) is exercise.straightforward
            assert exercise.straightforward.__name__ == exercise.reference.__name__


def test_graded_cells_agree_with_the_table() -> None:
    """Every graded part has one autograded cell worth its points, and every cell belongs to a table exercise."""
    notebook = nbformat.read(NBGRADER_SOURCE, as_version=4)
    graded: dict[tuple[str, str], int] = {}
    tagged = set()
    for cell in notebook.cells:
        nbgrader = cell_metadata.nbgrader_marks(cell)
        exercise = cell_metadata.exercise_of(cell)
        if exercise is not None:
            tagged.add(exercise)
        if nbgrader.get("grade"):
            part = nbgrader["grade_id"].removeprefix(f"{exercise}-")
            assert (exercise, part) not in graded, f"two graded cells for {exercise} {part}"
            graded[(exercise, part)] = nbgrader["points"]
    assert tagged == set(checks.BY_NAME)
    assert graded == {(exercise.name, part): points for exercise in checks.EXERCISES for part, points in exercise.parts.items()}


def test_grading_reads_the_table() -> None:
    """The example submissions' points and the hidden tests' candidates come from the table, and every
    exercise the table draws hidden inputs for gets them, within the hidden world's layers."""
    from course_fixtures import grading_examples
    from grading.grader import hidden_params

    assert grading_examples.POINTS == {exercise.name: exercise.points for exercise in checks.EXERCISES}
    _, tries = hidden_params.candidates("a secret", "a student")
    assert [set(candidate) for candidate in tries] == [{exercise.name for exercise in checks.EXERCISES}] * len(tries)
    for candidate in tries:
        for name, arguments in candidate.items():
            # `layers` (the circuit's) is a list, increasing; the others name one layer each.
            layers = [layer for key, value in arguments.items() if key.startswith("layer") for layer in (value if isinstance(value, list) else [value])]
            assert all(0 <= layer < HIDDEN_SHAPE.n_layers for layer in layers), (name, arguments)
            assert arguments.get("layers", [0]) == sorted(set(arguments.get("layers", [0]))), (name, arguments)
            assert arguments.get("layer_from", -1) < arguments.get("layer_to", 0), (name, arguments)


def test_a_world_carries_its_settings_to_the_checks(tiny_world: World) -> None:
    assert world_settings(tiny_world.model) is tiny_world.exercises
    assert world_settings(copy.deepcopy(tiny_world.model)) == tiny_world.exercises


def test_a_checks_keyword_arguments_replace_the_worlds_settings(tiny_world: World) -> None:
    """The hidden tests pass other prompts, layers and k; the arguments left at None keep the world's."""
    own = tiny_world.exercises.latent_to_logit
    overridden = exercise_settings(tiny_world.model, "latent_to_logit", prompt="Another prompt", layer=None, k=own.k + 1)
    assert (overridden.prompt, overridden.layer, overridden.k) == ("Another prompt", own.layer, own.k + 1)
    assert exercise_settings(tiny_world.model, "latent_to_logit") == own


def test_any_world_built_gets_its_own_settings() -> None:
    """Two worlds built side by side (as the hidden tests do): each model keeps its own settings, with no call to remember."""
    other_settings = dataclasses.replace(TINY_SHAPE.exercises, token_to_latent=dataclasses.replace(TINY_SHAPE.exercises.token_to_latent, layer=1))
    first = build_random_world(TINY_SHAPE, seed=1)
    second = build_random_world(dataclasses.replace(TINY_SHAPE, exercises=other_settings), seed=2)
    assert world_settings(first.model) is TINY_SHAPE.exercises
    assert world_settings(second.model) is other_settings


def test_a_model_no_world_holds_is_refused_with_a_way_out(tiny_world: World) -> None:
    from sae_lens import HookedSAETransformer

    bare = HookedSAETransformer(tiny_world.model.cfg)
    with pytest.raises(LookupError, match=r"load_world\(\.\.\.\)"):
        world_settings(bare)
