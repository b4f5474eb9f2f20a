"""nbgrader preprocessor, first of autograde's sanitize stage: the submission rebuilt from the release."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

from grading.grader.normalize import GRADING_METADATA, normalize


class NormalizeSubmission(NbGraderPreprocessor):
    """nbgrader preprocessor (first of autograde's sanitize stage): the submission rebuilt from the release.

    Its notes and the student's own code (for `IntegrityScan`) go into the notebook's metadata, which
    the rebuilt notebook takes from the release, so a submission cannot write them itself.
    """

    course_root = Unicode("", help="The nbgrader course directory, whose release/ holds the released notebooks.").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        info = resources["nbgrader"]
        release_path = Path(self.course_root) / "release" / info["assignment"] / f"{info['notebook']}.ipynb"
        release = nbformat.read(release_path, as_version=4)
        out, notes, own_code = normalize(nb, release)
        out.metadata.setdefault("latent_gradients", {})[GRADING_METADATA] = {"notes": notes, "own_code": own_code}
        return out, resources
