"""The set-up the README promises: one configuration, consistent pins, two commands."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def pinned(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)", requirement.strip())
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_every_dependency_is_pinned() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["dev"]
    assert len(pinned(requirements)) == len(requirements), "every dependency in pyproject.toml is pinned with =="


def test_environment_yml_agrees_with_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [dep for dep in environment["dependencies"] if isinstance(dep, str)]
    pip = next(dep["pip"] for dep in environment["dependencies"] if isinstance(dep, dict))
    python = next(dep.split("=", 1)[1] for dep in conda if dep.startswith("python="))
    low, high = re.fullmatch(r">=(\d+\.\d+),<(\d+\.\d+)", project["requires-python"]).groups()

    def as_tuple(version: str) -> tuple[int, ...]:
        return tuple(int(part) for part in version.split("."))

    assert as_tuple(low) <= as_tuple(python) < as_tuple(high)
    # torch first, pinned as in pyproject; then the project itself, which brings every other pin.
    assert pip[0] == f"torch=={pinned(project['dependencies'])['torch']}"
    assert pip[1:] == ["-e .[dev]"]


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make lint\nmake test$", ci, re.MULTILINE), "CI lints, then runs the README's test command"
    makefile = (ROOT / "Makefile").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch_install = f"pip install --quiet torch=={pinned(project['dependencies'])['torch']}"
    assert makefile.index(torch_install) < makefile.index('pip install --quiet -e ".[dev,workshop]"'), "torch first, on its own, same pin"
