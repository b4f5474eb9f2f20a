"""nbgrader preprocessor, after `NormalizeSubmission`: the static integrity scan of the student's own code."""

from __future__ import annotations

from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor

from grading.grader.integrity import scan_cells, similar_to_references
from grading.grader.normalize import GRADING_METADATA


class IntegrityScan(NbGraderPreprocessor):
    """nbgrader preprocessor (after `NormalizeSubmission`): the scan's findings into the notebook's metadata.

    `RobustExecute` turns them into an IntegrityViolation error in each graded cell of a flagged exercise; the
    functions that closely copy a reference go to the run report, for the instructor's review.
    """

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        job = nb.metadata.setdefault("latent_gradients", {}).setdefault(GRADING_METADATA, {})
        marks = [c.get("metadata", {}).get("nbgrader") for c in nb.cells]
        locked = [c.source for c, mark in zip(nb.cells, marks) if c.cell_type == "code" and mark and not mark.get("solution")]
        own_code = [tuple(pair) for pair in job.pop("own_code", [])]
        job["flags"] = scan_cells(own_code, locked)
        job["review"] = similar_to_references(own_code)
        return nb, resources
