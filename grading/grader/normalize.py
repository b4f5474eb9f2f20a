"""Rebuild a submission from the released notebook, keeping only what the student may change; its nbgrader
preprocessor, `NormalizeSubmission`, is the first of autograde's sanitize stage.

nbgrader restores the source of locked and graded cells that a student edited, but not cells a student
deleted (unless they are graded) nor their order. So before grading, each submission is rebuilt: every
cell of the release, in order, with the student's version of each solution cell, and the cells the
student added kept where they were (after the same release cell). A notebook that cannot be read at all
is graded as the untouched release by the batch runner, so that the student still gets a row in the
grades and feedback.
"""

from __future__ import annotations

import copy

import nbformat
from nbformat import NotebookNode

from grading import cell_metadata
from grading.grader.course import CoursePreprocessor
from grading.grader.record import record_of


def _grade_id(cell: NotebookNode) -> str | None:
    return cell_metadata.grade_id(cell)


def _exercise(cell: NotebookNode) -> str | None:
    return cell_metadata.exercise_of(cell)


def normalize(submission: NotebookNode, release: NotebookNode) -> tuple[NotebookNode, list[str], list[tuple[str, str]]]:
    """Returns (notebook to grade, notes for the student, [(exercise, source)] of the student's own code)."""
    notes: list[str] = []
    cells = list(submission.cells)

    release_ids = [_grade_id(cell) for cell in release.cells]
    release_by_id = {gid: cell for gid, cell in zip(release_ids, release.cells)}
    solution_ids = {gid for gid, cell in release_by_id.items() if cell_metadata.is_solution(cell)}
    exercise_of = {gid: _exercise(cell) for gid, cell in release_by_id.items() if _exercise(cell)}

    student_solutions: dict[str, NotebookNode] = {}
    added_after: dict[str | None, list[NotebookNode]] = {}
    seen: set[str] = set()
    last_known: str | None = None
    for cell in cells:
        gid = _grade_id(cell)
        if gid in release_by_id and gid not in seen:
            seen.add(gid)
            last_known = gid
            if gid in solution_ids:
                student_solutions[gid] = cell
            elif cell.get("source", "") != release_by_id[gid].source and cell_metadata.is_graded(release_by_id[gid]):
                notes.append(f"Graded cell `{gid}` was edited; the original was restored and graded.")
        else:
            added = copy.deepcopy(cell)
            added.get("metadata", {}).pop(cell_metadata.NBGRADER, None)
            added_after.setdefault(last_known, []).append(added)

    for gid in release_ids:
        if gid not in seen and gid in release_by_id and cell_metadata.is_graded(release_by_id[gid]):
            notes.append(f"Graded cell `{gid}` was deleted; it was restored and graded.")
        elif gid not in seen and gid in solution_ids:
            notes.append(f"Solution cell `{gid}` was deleted; its empty version from the release was graded.")
    missing_locked = [gid for gid in release_ids if gid not in seen and gid not in solution_ids and not cell_metadata.is_graded(release_by_id[gid])]
    if missing_locked:
        notes.append(f"{len(missing_locked)} locked cell(s) were deleted and restored.")

    out = nbformat.v4.new_notebook(metadata=copy.deepcopy(release.metadata))
    own_code: list[tuple[str, str]] = []
    current_exercise = "*"
    for cell in added_after.get(None, []):
        out.cells.append(cell)
        if cell.cell_type == "code":
            own_code.append(("*", cell.source))
    for gid, cell in zip(release_ids, release.cells):
        current_exercise = exercise_of.get(gid, current_exercise)
        if gid in student_solutions:
            mine = copy.deepcopy(student_solutions[gid])
            mine.metadata[cell_metadata.NBGRADER] = copy.deepcopy(cell_metadata.nbgrader_marks(cell))
            mine.metadata[cell_metadata.COURSE] = copy.deepcopy(cell_metadata.course_marks(cell))
            out.cells.append(mine)
            own_code.append((current_exercise, mine.source))
        else:
            out.cells.append(copy.deepcopy(cell))
        for added in added_after.get(gid, []):
            out.cells.append(added)
            if added.cell_type == "code":
                own_code.append((current_exercise, added.source))
    for index, cell in enumerate(out.cells):
        cell["id"] = f"cell-{index:03d}"
    return out, notes, own_code


def exercise_of_cells(release: NotebookNode) -> dict[str, str]:
    return {gid: ex for gid, ex in ((_grade_id(c), _exercise(c)) for c in release.cells) if gid and ex}


class NormalizeSubmission(CoursePreprocessor):
    """nbgrader preprocessor (first of autograde's sanitize stage): the submission rebuilt from the release.

    Its notes and the student's own code (for `IntegrityScan`) go into the grading record; the rebuilt
    notebook's metadata is the release's, so nothing a submission wrote in its own metadata is kept.
    """

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        out, notes, own_code = normalize(nb, self.released_notebook(resources))
        record = record_of(resources)
        record.notes += notes
        record.own_code += own_code
        return out, resources
