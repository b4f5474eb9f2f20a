"""Example submissions, built from the release and the source: for the project's tests and the benchmark.

Each is (notebook text, expected score per exercise). "base" is the reference solutions of exercises 1,
4 and 5 (the cheap ones) with the others left as released, 6 of 12 points; each failure kind breaks
exercise 4 (`token_to_latent`) of the base, so exercises 1 and 5, before and after it, still score.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from grading import settings

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
POINTS = {"sparse_tensor": 2, "latent_to_latent": 3, "token_to_latent": 2, "latent_to_logit": 2, "attention": 3}
ZERO = dict.fromkeys(POINTS, 0)
BASE = ZERO | {"sparse_tensor": 2, "token_to_latent": 2, "latent_to_logit": 2}


def _exercise(cell: NotebookNode) -> str | None:
    return cell.get("metadata", {}).get("latent_gradients", {}).get("exercise")


def _grade_id(cell: NotebookNode) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _solution_text(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if line.strip() not in (BEGIN, END))


def _solve(release: NotebookNode, source: NotebookNode, exercises: set[str] | None) -> NotebookNode:
    answers = {_grade_id(c): _solution_text(c.source) for c in source.cells if c.metadata.get("nbgrader", {}).get("solution")}
    nb = copy.deepcopy(release)
    for cell in nb.cells:
        gid = _grade_id(cell)
        if gid in answers and (exercises is None or _exercise(cell) in exercises):
            cell.source = answers[gid]
    return nb


def _edit(nb: NotebookNode, exercise: str, edit: Callable[[str], str], which: int = -1) -> NotebookNode:
    cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution") and _exercise(c) == exercise]
    cell = cells[which]
    new = edit(cell.source)
    assert new != cell.source, f"edit of {exercise} changed nothing"
    cell.source = new
    return nb


def build(course: Path) -> dict[str, tuple[str, dict[str, float]]]:
    release = nbformat.read(course / "release" / settings.ASSIGNMENT / f"{settings.NOTEBOOK}.ipynb", as_version=4)
    source = nbformat.read(course / "source" / settings.ASSIGNMENT / f"{settings.NOTEBOOK}.ipynb", as_version=4)

    def base() -> NotebookNode:
        return _solve(release, source, {"sparse_tensor", "token_to_latent", "latent_to_logit"})

    examples: dict[str, tuple[NotebookNode | str, dict[str, float]]] = {}
    examples["solutions"] = (_solve(release, source, None), dict(POINTS))
    examples["release"] = (copy.deepcopy(release), dict(ZERO))

    partial = base()
    # from_sparse loses the values' dtype (float64 comes back float32): from_dense scores, from_sparse not.
    _edit(partial, "sparse_tensor", lambda s: s.replace("t.zeros(shape, dtype=values.dtype, device=values.device)", "t.zeros(shape, device=values.device)"))
    # the Jacobian is not rearranged to (batch, seq, n_active): the activations score, the gradients not.
    _edit(partial, "token_to_latent", lambda s: s.replace('einops.rearrange(jacobian, "n_active batch seq -> batch seq n_active")', "jacobian"))
    examples["partial"] = (partial, ZERO | {"sparse_tensor": 1, "token_to_latent": 1, "latent_to_logit": 2})

    def broken(edit: Callable[[str], str]) -> NotebookNode:
        return _edit(base(), "token_to_latent", edit)

    examples["raises"] = (broken(lambda s: s.replace('    """\n    token_scales', '    """\n    raise ValueError("not finished")\n    token_scales')), BASE | {"token_to_latent": 0})
    examples["infinite_loop"] = (broken(lambda s: "while True:\n    pass\n\n" + s), BASE | {"token_to_latent": 0})
    examples["kernel_exit"] = (broken(lambda s: "import os\n\nos._exit(1)\n\n" + s), BASE | {"token_to_latent": 0})
    examples["out_of_memory"] = (
        broken(lambda s: s.replace('    """\n    token_scales', '    """\n    hog = [t.ones(2**25) for _ in range(10**6)]\n    token_scales')),
        BASE | {"token_to_latent": 0},
    )
    examples["syntax_error"] = (broken(lambda s: s.replace("def token_to_latent_gradients(", "def token_to_latent_gradients((", 1)), BASE | {"token_to_latent": 0})

    edited = base()
    graded = [c for c in edited.cells if c.metadata.get("nbgrader", {}).get("grade")]
    graded[0].source = 'print("✓ test_sparse_tensor passed")'  # an edited check: restored before grading
    edited.cells.remove(next(c for c in graded if _exercise(c) == "latent_to_logit"))  # a deleted check: restored
    edited.cells.remove(next(c for c in edited.cells if c.cell_type == "markdown"))  # a deleted locked cell
    examples["edited_tests"] = (edited, dict(BASE))

    patched = base()
    _edit(patched, "token_to_latent", lambda s: s + '\n\ntests.test_token_to_latent_gradients = lambda *args, **kwargs: print("✓ passed")\n')
    _edit(patched, "latent_to_logit", lambda s: s + "\n\nt.testing.assert_close = lambda *args, **kwargs: None\n", which=0)
    examples["monkeypatch"] = (patched, BASE | {"token_to_latent": 0, "latent_to_logit": 0})

    imports = base()
    _edit(imports, "latent_to_logit", lambda s: "from solutions import latent_acts_to_logits, latent_to_logit_gradients\n", which=0)
    examples["imports_solutions"] = (imports, BASE | {"latent_to_logit": 0})

    examples["unreadable"] = ('{"cells": [ this is not JSON', dict(ZERO))
    return {name: (nb if isinstance(nb, str) else nbformat.writes(nb), expected) for name, (nb, expected) in examples.items()}


def submit(course: Path, examples: dict[str, tuple[str, dict[str, float]]], timestamp: str = "2025-01-01 12:00:00 UTC") -> None:
    """Place each example as the submission of a student of the same name, as `nbgrader collect` would."""
    for student, (text, _) in examples.items():
        folder = course / "submitted" / student / settings.ASSIGNMENT
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{settings.NOTEBOOK}.ipynb").write_text(text, encoding="utf-8")
        (folder / "timestamp.txt").write_text(timestamp, encoding="utf-8")
