"""Shared fixtures. Every test world comes from one seeded builder, `build_random_world`, and carries its
exercise settings (a World attaches them to its model), so the checks need nothing else.

The learner checks live in the `tests` package and are imported as a module (`import tests as
checks`), never by name (`from tests import test_sparse_tensor`), or pytest would collect them.
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import pytest
import torch

import tests as checks
from part_utils.random_world import TINY_SHAPE, build_random_world
from part_utils.world_types import World


def pytest_configure(config: pytest.Config) -> None:
    """One marker per exercise of the exercise table (`pytest -m attention`), beside pyproject.toml's own; one torch thread."""
    for exercise in checks.EXERCISES:
        config.addinivalue_line("markers", f"{exercise.name}: {exercise.title}")
    # The test worlds' tensors are too small to gain from a second thread, which costs CPU time in
    # hand-offs and leaves no core for the kernels and servers the tests start.
    torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def environment_tools_on_path() -> None:
    """Subprocesses find this environment's own tools (nbgrader runs `alembic` by name), as if the venv
    were activated, however pytest was started."""
    os.environ["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", "")))


@pytest.fixture(scope="session")
def tiny_world() -> World:
    """A small seeded random world, shared by the session: copy it (`fresh_world`) before changing it."""
    torch.manual_seed(0)
    world = build_random_world(TINY_SHAPE, seed=0, device="cpu")
    for layer in sorted({*world.exercises.residual_layers}):
        world.saes[layer]
    for layer in world.exercises.attention_layers:
        world.attn_saes[layer]
    return world


@pytest.fixture
def fresh_world(tiny_world: World) -> World:
    """A deep copy of the tiny world, for a test that may change the model or SAEs."""
    model = copy.deepcopy(tiny_world.model)
    world = World(
        name=tiny_world.name,
        model=model,
        saes={layer: copy.deepcopy(tiny_world.saes[layer]) for layer in tiny_world.exercises.residual_layers},
        attn_saes={layer: copy.deepcopy(tiny_world.attn_saes[layer]) for layer in tiny_world.exercises.attention_layers},
        exercises=tiny_world.exercises,
        description=tiny_world.description,
    )
    return world


# Figures the tests measure (timings, scores, rates) are printed together at the end of the run, so
# that `make test` reports them without -s. A test adds lines with `figures.add(section, line)`.
class Figures:
    def __init__(self) -> None:
        self.sections: dict[str, list[str]] = {}

    def add(self, section: str, line: str) -> None:
        self.sections.setdefault(section, []).append(line)


_FIGURES = Figures()


@pytest.fixture(scope="session")
def figures() -> Figures:
    return _FIGURES


def pytest_terminal_summary(terminalreporter) -> None:  # pytest's hook signature
    for section, lines in _FIGURES.sections.items():
        terminalreporter.write_sep("-", section)
        for line in lines:
            terminalreporter.write_line(line)
