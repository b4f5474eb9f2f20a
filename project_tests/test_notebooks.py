"""The generated notebooks are fresh, and they run on the offline world as a learner would run them."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import tests as checks

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SOLUTIONS = NOTEBOOKS / "latent_gradients_solutions.ipynb"
EXERCISES = NOTEBOOKS / "latent_gradients_exercises.ipynb"

pytestmark = pytest.mark.notebooks


def offline_world() -> str:
    """The trained toy world, or the random one if the toy world's weights are missing."""
    return "toy" if (ROOT / "part_utils" / "toy_world_data").exists() else "random"


def execute(path: Path, monkeypatch: pytest.MonkeyPatch, allow_errors: bool) -> tuple[nbformat.NotebookNode, float]:
    monkeypatch.setenv("LATENT_GRADIENTS_WORLD", offline_world())
    monkeypatch.setenv("LATENT_GRADIENTS_DEVICE", "cpu")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", allow_errors=allow_errors, resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    start = time.perf_counter()
    client.execute()
    return notebook, time.perf_counter() - start


def outputs_of(cell: nbformat.NotebookNode, output_type: str) -> list:
    return [output for output in cell.get("outputs", []) if output["output_type"] == output_type]


def test_generated_notebooks_are_fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `build.py --check` checks, in this process: a second Python would import torch and the checks again."""
    monkeypatch.syspath_prepend(str(NOTEBOOKS))  # build.py imports its sibling nbgrader_cells
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "build.py")
    build = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, build)  # its dataclasses look their module up there
    spec.loader.exec_module(build)
    stale = [str(path.relative_to(ROOT)) for path, text in build.outputs().items() if not path.exists() or path.read_text(encoding="utf-8") != text]
    assert not stale, f"stale generated notebooks (run `make notebooks`): {stale}"


def test_only_the_self_study_notebooks_advise_reading_the_solutions() -> None:
    """The graded release (nbgrader's source) says what applies to a graded assignment; the learner notebooks keep the advice."""
    graded = nbformat.read(ROOT / "nbgrader" / "source" / "latent_gradients" / "latent_gradients.ipynb", as_version=4)
    learner = nbformat.read(EXERCISES, as_version=4)

    def mentions_solutions(notebook: nbformat.NotebookNode) -> bool:
        return any(SOLUTIONS.name in cell.source for cell in notebook.cells if cell.cell_type == "markdown")

    assert mentions_solutions(learner) and not mentions_solutions(graded)


def test_every_exercise_has_hints_in_two_steps() -> None:
    """The idea first, then the code behind a second fold, in the same cell: one pair per exercise, and no lone "Hint"."""
    source = (NOTEBOOKS / "source" / "latent_gradients.py").read_text(encoding="utf-8")
    exercises = set(re.findall(r"^# %% \[exercise exercise=(\w+)", source, flags=re.MULTILINE))
    pairs = 0
    for cell in nbformat.read(SOLUTIONS, as_version=4).cells:
        folds = re.findall(r"<summary>(Hint[^<]*)</summary>", cell.source) if cell.cell_type == "markdown" else []
        assert "Hint" not in folds, f"a hint in one step: {cell.source[:80]!r}"
        ideas = [i for i, fold in enumerate(folds) if fold == "Hint: the idea"]
        assert all(folds[i + 1 : i + 2] == ["Hint: the code"] for i in ideas) and folds.count("Hint: the code") == len(ideas), folds
        pairs += len(ideas)
    assert pairs == len(exercises) > 0


def test_exercise_contracts_are_the_references() -> None:
    """Every function a learner writes has the reference's signature and docstring, and every class its docstring:
    one contract, two readers."""
    import solutions

    notebook = nbformat.read(SOLUTIONS, as_version=4)
    learner_functions = {
        node.name: node
        for cell in notebook.cells
        if cell.cell_type == "code"
        for node in ast.parse(cell.source).body
        if isinstance(node, (ast.FunctionDef, ast.ClassDef))
    }
    for name in solutions.__all__:
        if inspect.isclass(reference := getattr(solutions, name)):
            want = ast.parse(inspect.getsource(reference)).body[0]
            assert ast.get_docstring(learner_functions[name]) == ast.get_docstring(want), name
    references = [value for name in solutions.__all__ if inspect.isfunction(value := getattr(solutions, name))]
    assert references
    for reference in references:
        want = ast.parse(inspect.getsource(reference)).body[0]
        got = learner_functions[reference.__name__]
        assert ast.dump(got.args) == ast.dump(want.args), reference.__name__
        assert ast.dump(got.returns) == ast.dump(want.returns), reference.__name__
        assert ast.get_docstring(got) == ast.get_docstring(want), reference.__name__


@pytest.mark.slow  # executes a notebook in a kernel
def test_smoke_solutions_notebook_runs_clean(monkeypatch: pytest.MonkeyPatch, figures) -> None:
    """Top to bottom with no error and nothing on stderr (which nbgrader would score as a failure)."""
    notebook, seconds = execute(SOLUTIONS, monkeypatch, allow_errors=False)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    stderr = [(i, out["text"][:200]) for i, cell in enumerate(code_cells) for out in outputs_of(cell, "stream") if out["name"] == "stderr"]
    assert not stderr, f"cells wrote to stderr: {stderr}"
    passed = [line for cell in code_cells for out in outputs_of(cell, "stream") for line in out["text"].splitlines() if line.startswith("✓")]
    expected = sum(1 + len(exercise.intermediate_checks) for exercise in checks.EXERCISES)  # each check of the exercise table
    assert len(passed) == expected, f"expected the {expected} learner checks to pass, got: {passed}"
    figures.add("notebooks", f"solutions notebook on the {offline_world()} world: {seconds:.1f} s, {len(code_cells)} code cells, no error")
    for line in passed:
        figures.add("notebooks", f"  {line}")


@pytest.mark.slow  # executes a notebook in a kernel
def test_exercise_notebook_runs_until_its_first_stub(monkeypatch: pytest.MonkeyPatch, figures) -> None:
    """Everything before the first check runs; every check then fails with the learner-facing message."""
    notebook, seconds = execute(EXERCISES, monkeypatch, allow_errors=True)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    check_cells = [i for i, cell in enumerate(code_cells) if cell.source.startswith("tests.test_")]
    errors = {i: outputs_of(cell, "error")[0] for i, cell in enumerate(code_cells) if outputs_of(cell, "error")}
    assert min(errors) == check_cells[0], "a cell before the first check failed"
    for i in check_cells:
        error = errors.get(i)
        assert error is not None, f"check cell {code_cells[i].source!r} passed on a stub"
        assert error["ename"] == "CheckFailed", f"{code_cells[i].source!r} raised {error['ename']}, not a learner-facing message"
        assert "NotImplementedError" in error["evalue"] and "fill in its body" in error["evalue"]
        # IPython shows a CheckFailed as its message alone, not as a traceback through the checks.
        assert len(error["traceback"]) == 1 and "Traceback" not in error["traceback"][0]
    figures.add("notebooks", f"exercise notebook on the {offline_world()} world: {seconds:.1f} s; {len(check_cells)} checks fail on the stubs with a message")


@pytest.mark.slow  # executes a notebook in a kernel
def test_validate_reports_every_unfinished_exercise(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """nbgrader's Validate, on the learner notebook `make lab` opens, names each check a stub fails."""
    monkeypatch.setenv("LATENT_GRADIENTS_WORLD", offline_world())
    notebook = tmp_path / EXERCISES.name
    notebook.write_bytes(EXERCISES.read_bytes())
    result = subprocess.run([sys.executable, "-m", "nbgrader", "validate", str(notebook)], cwd=tmp_path, capture_output=True, text=True)
    checks = [cell for cell in nbformat.read(EXERCISES, as_version=4).cells if cell.source.startswith("tests.test_")]
    assert result.stdout.count("The following cell failed") == len(checks), result.stdout + result.stderr
    # nbgrader cuts each message to about 80 characters: a long function name can push "still raises" off the end.
    failures = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("✗ test_")]
    assert sorted(line.split(":")[0].removeprefix("✗ ") for line in failures) == sorted(cell.source.split("(")[0].removeprefix("tests.") for cell in checks)
    assert all("still r" in line or line.endswith("...") for line in failures), "each failure says the function still raises NotImplementedError"
