"""nbgrader preprocessor, before execution: the course's demonstration cells are not run.

The demonstrations (plots, dashboards, printed results) score nothing and cost a third of a grading
kernel's time. Those that `grading.grader.demonstrations.skippable` finds safe to leave out (exactly the
released cell, and nothing of the learner's reads what they bind) get nbclient's own `skip-execution`
tag, which nbgrader's execute step honours, and a one-line output that says so in the feedback. The tag
is the grader's: it is removed from every other cell, so a submission cannot skip cells of its own choosing.
"""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient
from nbformat import NotebookNode

from grading.grader.demonstrations import skippable
from grading.preprocessors.course import CoursePreprocessor

SKIP_TAG = NotebookClient.skip_cells_with_tag.default_value
NOT_RUN = "[not run when grading: a demonstration, which scores nothing]\n"


class SkipDemonstrations(CoursePreprocessor):
    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        skipped = set(skippable(nb, self.released_notebook(resources)))
        for index, cell in enumerate(nb.cells):
            tags = [tag for tag in cell.get("metadata", {}).get("tags", []) if tag != SKIP_TAG]
            if index in skipped:
                tags.append(SKIP_TAG)
                cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=NOT_RUN)]
                cell.execution_count = None
            if tags or "tags" in cell.get("metadata", {}):
                cell.metadata["tags"] = tags
        return nb, resources
