"""nbgrader preprocessor, first of autograde's sanitize stage: the submission rebuilt from the release."""

from __future__ import annotations

from nbformat import NotebookNode

from grading.grader.normalize import GRADING_METADATA, normalize
from grading.preprocessors.course import CoursePreprocessor


class NormalizeSubmission(CoursePreprocessor):
    """nbgrader preprocessor (first of autograde's sanitize stage): the submission rebuilt from the release.

    Its notes and the student's own code (for `IntegrityScan`) go into the notebook's metadata, which
    the rebuilt notebook takes from the release, so a submission cannot write them itself.
    """

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        out, notes, own_code = normalize(nb, self.released_notebook(resources))
        out.metadata.setdefault("latent_gradients", {})[GRADING_METADATA] = {"notes": notes, "own_code": own_code}
        return out, resources
