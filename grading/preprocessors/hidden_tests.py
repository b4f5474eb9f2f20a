"""nbgrader preprocessor, before execution: the hidden tests' inputs, chosen from the instructor's secret."""

from __future__ import annotations

import json
import os
from pathlib import Path

from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

from grading.grader.hidden_params import PARAMS_ENV, params_for


class ChooseHiddenTests(NbGraderPreprocessor):
    """nbgrader preprocessor (before execution): the hidden tests' inputs, for the grading kernel's environment."""

    course_root = Unicode("", help="The nbgrader course directory (its secret, and reports/ for the cache).").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        os.environ[PARAMS_ENV] = json.dumps(params_for(Path(self.course_root)))
        return nb, resources
