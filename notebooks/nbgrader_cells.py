"""The nbgrader version of a course notebook: the same cells, with nbgrader's cell metadata.

- exercise cells become solution cells (nbgrader replaces their solution regions for students);
- check cells become autograded test cells worth their `points`;
- every other cell is locked, so a student's edits to it are undone when grading.
"""

from __future__ import annotations

import nbformat


def _nbgrader(grade_id: str, *, solution: bool = False, grade: bool = False, locked: bool = False, points: int = 0) -> dict:
    metadata = {"grade_id": grade_id, "solution": solution, "grade": grade, "locked": locked, "schema_version": 3}
    if grade:
        metadata["points"] = points
    return metadata


def build_nbgrader_notebook(name: str, cells: list) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "latent_gradients": {"generated_from": f"notebooks/source/{name}.py", "variant": "nbgrader source"},
    }
    for index, cell in enumerate(cells):
        grade_id = f"{cell.kind}-{index:02d}"
        if cell.kind == "markdown":
            new = nbformat.v4.new_markdown_cell(cell.text, id=grade_id)
            new.metadata["nbgrader"] = _nbgrader(grade_id, locked=True)
        elif cell.kind == "exercise":
            new = nbformat.v4.new_code_cell(cell.text, id=grade_id)
            new.metadata["nbgrader"] = _nbgrader(grade_id, solution=True)
        elif cell.kind == "check":
            new = nbformat.v4.new_code_cell(cell.text, id=grade_id)
            new.metadata["nbgrader"] = _nbgrader(grade_id, grade=True, locked=True, points=int(cell.options.get("points", 1)))
        else:
            new = nbformat.v4.new_code_cell(cell.text, id=grade_id)
            new.metadata["nbgrader"] = _nbgrader(grade_id, locked=True)
        notebook.cells.append(new)
    return notebook
