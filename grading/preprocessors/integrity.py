"""nbgrader preprocessor, after `NormalizeSubmission`: the static integrity scan of the student's own code."""

from __future__ import annotations

from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor

from grading.grader.integrity import scan_cells
from grading.grader.normalize import GRADING_METADATA


class IntegrityScan(NbGraderPreprocessor):
    """nbgrader preprocessor (after `NormalizeSubmission`): the scan's findings into the notebook's metadata.

    `RobustExecute` turns them into an IntegrityViolation error in each graded cell of a flagged exercise.
    """

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        job = nb.metadata.setdefault("latent_gradients", {}).setdefault(GRADING_METADATA, {})
        marks = [c.get("metadata", {}).get("nbgrader") for c in nb.cells]
        locked = [c.source for c, mark in zip(nb.cells, marks) if c.cell_type == "code" and mark and not mark.get("solution")]
        job["flags"] = scan_cells([tuple(pair) for pair in job.pop("own_code", [])], locked)
        return nb, resources
