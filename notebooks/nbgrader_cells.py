"""The nbgrader version of a course notebook: the same cells, with nbgrader's cell metadata.

- exercise cells become solution cells (nbgrader replaces their solution regions for students);
- check cells, which test a whole exercise, are left out: the grader cells replace them; those marked
  `ungraded=locked` (the intermediate functions' checks) stay, as locked cells worth no points;
- grader cells become autograded test cells worth their `points`, with their own `id` as grade_id
  (`<exercise>-<part>`). Each checks one part of an exercise (from_dense / from_sparse, activations /
  gradients), so partial credit is real; when grading, the grader scores the part itself from what the
  learner's code returns on hidden inputs (grading/grader/verdict.py), so hard-coded outputs earn nothing;
- every other cell is locked, so a student's edits to it are undone when grading; demo cells also carry
  `metadata.latent_gradients.demonstration`, which tells the grader it need not run them.

Solution and grader cells also carry `metadata.latent_gradients.exercise`, the exercise they belong
to: the grader uses it to attribute integrity findings and to summarise scores per exercise.
"""

from __future__ import annotations

import nbformat

from grading import cell_metadata


def _nbgrader(grade_id: str, *, solution: bool = False, grade: bool = False, locked: bool = False, points: int = 0) -> dict:
    metadata = {"grade_id": grade_id, "solution": solution, "grade": grade, "locked": locked, "schema_version": 3}
    if grade:
        metadata["points"] = points
    return metadata


def _grader_cell(cell, index: int) -> nbformat.NotebookNode:
    where = f"notebooks/source line {cell.line_number}"
    for option in ("exercise", "id", "points"):
        if option not in cell.options:
            raise ValueError(f"{where}: a grader cell needs `{option}=`")
    grade_id = cell.options["id"]
    new = nbformat.v4.new_code_cell(cell.text, id=grade_id.replace("_", "-"))
    new.metadata[cell_metadata.NBGRADER] = _nbgrader(grade_id, grade=True, locked=True, points=int(cell.options["points"]))
    new.metadata[cell_metadata.COURSE] = {cell_metadata.EXERCISE: cell.options["exercise"]}
    return new


def build_nbgrader_notebook(name: str, cells: list) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = cell_metadata.notebook_marks(name, "nbgrader source")
    grade_ids: set[str] = set()
    kept = [cell for cell in cells if cell.kind != "check" or cell.options.get("ungraded") == "locked"]
    for index, cell in enumerate(kept):
        if cell.options.get("only") == "learner":
            continue  # self-study advice; its index stays taken, so the other cells keep their grade ids
        grade_id = f"{cell.kind}-{index:02d}"
        if cell.kind == "markdown":
            new = nbformat.v4.new_markdown_cell(cell.text, id=grade_id)
            new.metadata[cell_metadata.NBGRADER] = _nbgrader(grade_id, locked=True)
        elif cell.kind == "exercise":
            new = nbformat.v4.new_code_cell(cell.text, id=grade_id)
            new.metadata[cell_metadata.NBGRADER] = _nbgrader(grade_id, solution=True)
            new.metadata[cell_metadata.COURSE] = {cell_metadata.EXERCISE: cell.options.get("exercise", grade_id)}
        elif cell.kind == "grader":
            new = _grader_cell(cell, index)
        else:
            new = nbformat.v4.new_code_cell(cell.text, id=grade_id)
            new.metadata[cell_metadata.NBGRADER] = _nbgrader(grade_id, locked=True)
            if cell.kind == "demo":
                new.metadata[cell_metadata.COURSE] = {cell_metadata.DEMONSTRATION: True}
        if cell_metadata.grade_id(new) in grade_ids:
            raise ValueError(f"duplicate grade_id {cell_metadata.grade_id(new)!r}")
        grade_ids.add(cell_metadata.grade_id(new))
        notebook.cells.append(new)
    return notebook
