"""The grader leaves out the course's demonstration cells, and no grade can depend on it.

Statically, over the nbgrader notebook built from the single source: no other cell (exercise, check,
graded cell with its hidden tests, set-up) reads a name a demonstration binds, so a demonstration's
absence cannot change what they compute. Then the preprocessor on submissions: only exact copies of the
released demonstrations are skipped, never a cell a learner changed or added (whatever its metadata), and
none at all when the learner's own code reads a name a demonstration binds.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
import pytest
from traitlets.config import Config

from grading import cell_metadata
from grading.grader import settings
from grading.grader.demonstrations import NOT_RUN, SKIP_TAG, SkipDemonstrations, bound_and_read, grade_id, is_marked, skippable

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "nbgrader" / "source" / settings.ASSIGNMENT / f"{settings.NOTEBOOK}.ipynb"


@pytest.fixture(scope="module")
def release() -> nbformat.NotebookNode:
    """The nbgrader notebook: its locked cells are the release's, as generate_assignment leaves them."""
    return nbformat.read(SOURCE, as_version=4)


def _demonstrations(nb: nbformat.NotebookNode) -> list[int]:
    return [index for index, cell in enumerate(nb.cells) if is_marked(cell)]


def _solution_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return next(cell for cell in nb.cells if cell_metadata.is_solution(cell))


def test_no_other_cell_reads_what_a_demonstration_binds(release) -> None:
    demos = _demonstrations(release)
    assert len(demos) >= 10, "the source marks the course's demonstrations with `# %% [demo]`"
    bound = {index: bound_and_read(release.cells[index].source)[0] for index in demos}
    for index, cell in enumerate(release.cells):
        if cell.cell_type != "code" or index in demos:
            continue
        read = bound_and_read(cell.source)[1]
        for demo, names in bound.items():
            assert not names & read, (f"cell {grade_id(cell)} reads {sorted(names & read)}, bound by the demonstration {grade_id(release.cells[demo])}: "
                                      "the grader skips demonstrations, so bind them in a cell of kind `code` instead")


def test_released_demonstrations_are_skipped(release) -> None:
    assert skippable(copy.deepcopy(release), release) == _demonstrations(release)


def test_a_changed_demonstration_runs(release) -> None:
    nb = copy.deepcopy(release)
    edited = _demonstrations(nb)[0]
    nb.cells[edited].source += "\nprint('mine')"
    assert edited not in skippable(nb, release)


@pytest.mark.parametrize("reads", [
    "def helper():\n    return str_toks",  # a global a demonstration binds, read inside a function
    "def latent_acts_to_logits(latent_acts, sae, model):\n    return logits_recon",  # a local the learner forgot: the demonstration's global
    "print(settings.prompt)",
    "values = globals()['gradients']",  # by name, at run time
    "%time x = 1",  # IPython magics run code the grader cannot read
])
def test_learner_code_that_may_read_a_demonstrations_names_runs_them_all(release, reads: str) -> None:
    nb = copy.deepcopy(release)
    nb.cells.insert(len(nb.cells) // 2, nbformat.v4.new_code_cell(reads))
    assert skippable(nb, release) == []
    solved = copy.deepcopy(release)
    _solution_cell(solved).source = reads
    assert skippable(solved, release) == []


@pytest.mark.parametrize("code", [
    "def mine(tokens, settings):\n    str_toks = [t for t in tokens]\n    return str_toks, settings",  # a parameter or local called `tokens` is not the global
    "def mine(tokens):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\n    return gradients, latent_acts",  # the stub: never reached
])
def test_learner_names_that_only_look_alike_do_not_count(release, code: str) -> None:
    nb = copy.deepcopy(release)
    _solution_cell(nb).source = code
    assert skippable(nb, release) == _demonstrations(release)


def test_the_preprocessor_marks_only_release_demonstrations(release, tmp_path) -> None:
    folder = tmp_path / "release" / settings.ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(release, folder / f"{settings.NOTEBOOK}.ipynb")
    nb = copy.deepcopy(release)
    # a learner's cell that claims to be a demonstration, and asks nbclient to skip it
    forged = nbformat.v4.new_code_cell("x = 1", metadata={cell_metadata.COURSE: {cell_metadata.DEMONSTRATION: True}, "tags": [SKIP_TAG, "mine"]})
    nb.cells.insert(1, forged)
    resources = {"nbgrader": {"assignment": settings.ASSIGNMENT, "notebook": settings.NOTEBOOK}}
    out, _ = SkipDemonstrations(config=Config({"CourseDirectory": {"root": str(tmp_path)}})).preprocess(nb, resources)
    skipped = [index for index, cell in enumerate(out.cells) if SKIP_TAG in cell.metadata.get("tags", [])]
    assert skipped == [index + 1 for index in _demonstrations(release)]
    assert out.cells[1].metadata["tags"] == ["mine"]
    for index in skipped:
        assert out.cells[index].outputs == [nbformat.v4.new_output("stream", name="stdout", text=NOT_RUN)]
