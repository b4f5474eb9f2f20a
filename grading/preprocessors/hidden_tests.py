"""nbgrader preprocessor, before execution: the hidden tests' inputs, chosen from the instructor's secret."""

from __future__ import annotations

import json
import os

from nbformat import NotebookNode

from grading.grader.hidden_params import PARAMS_ENV, params_for
from grading.preprocessors.course import CoursePreprocessor


class ChooseHiddenTests(CoursePreprocessor):
    """nbgrader preprocessor (before execution): the hidden tests' inputs, for the grading kernel's environment."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        # The course directory holds the secret, and reports/ the choice's cache.
        os.environ[PARAMS_ENV] = json.dumps(params_for(self.course_root))
        return nb, resources
