"""What the course's preprocessors read of the nbgrader course directory: its root and its released notebooks.

They take the course directory from nbgrader's own `CourseDirectory` configuration, the setting every
nbgrader step already reads (`nbgrader/nbgrader_config.py`, or the workshop instructor's), so one
setting points the whole pipeline at one course.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat import NotebookNode
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor


class CoursePreprocessor(NbGraderPreprocessor):
    """An nbgrader preprocessor that reads the course directory it grades for."""

    @property
    def course_root(self) -> Path:
        return Path(CourseDirectory(config=self.config).root)

    def released_notebook(self, resources: dict) -> NotebookNode:
        """The release of the notebook being graded (`resources["nbgrader"]` names it), as nbgrader lays it out."""
        info = resources["nbgrader"]
        course = CourseDirectory(config=self.config)
        folder = Path(course.format_path(course.release_directory, ".", info["assignment"]))
        return nbformat.read(folder / f"{info['notebook']}.ipynb", as_version=4)
