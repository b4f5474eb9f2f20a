"""The cell-metadata format of the course's notebooks, nbgrader's keys and the course's own, in one place.

nbgrader marks each cell in `metadata.nbgrader` (grade_id, solution, grade, locked, points); the course adds
`metadata.latent_gradients`: `exercise` (the exercise a solution or graded cell belongs to) and
`demonstration` (a cell that only shows results). A notebook's own `metadata.latent_gradients.grading` holds
the grading record between autograde's two conversions (`record`) and the batch runner's note on a notebook
it grades in place of an unreadable one (`runner_note`). notebooks/build.py writes this format; grading and
the project's tests read it.
"""

from __future__ import annotations

from typing import Any

NBGRADER = "nbgrader"
COURSE = "latent_gradients"
EXERCISE = "exercise"
DEMONSTRATION = "demonstration"
GRADING = "grading"
RECORD = "record"
RUNNER_NOTE = "runner_note"


def notebook_marks(source: str, variant: str) -> dict[str, Any]:
    """A generated notebook's metadata: the kernel, and the course's note of the source and variant it comes from."""
    return {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        COURSE: {"generated_from": f"notebooks/source/{source}.py", "variant": variant},
    }


def nbgrader_marks(cell: Any) -> dict[str, Any]:
    return cell.get("metadata", {}).get(NBGRADER, {})


def course_marks(cell: Any) -> dict[str, Any]:
    return cell.get("metadata", {}).get(COURSE, {})


def grade_id(cell: Any) -> str | None:
    return nbgrader_marks(cell).get("grade_id")


def is_graded(cell: Any) -> bool:
    return bool(nbgrader_marks(cell).get("grade"))


def is_solution(cell: Any) -> bool:
    return bool(nbgrader_marks(cell).get("solution"))


def is_locked(cell: Any) -> bool:
    return bool(nbgrader_marks(cell).get("locked"))


def is_check(cell: Any) -> bool:
    """A graded cell of the grader's (a test), not a learner's graded answer."""
    return is_graded(cell) and not is_solution(cell)


def exercise_of(cell: Any) -> str | None:
    return course_marks(cell).get(EXERCISE)


def is_demonstration(cell: Any) -> bool:
    return cell.get("cell_type") == "code" and course_marks(cell).get(DEMONSTRATION) is True


def grading_job(nb: Any, create: bool = False) -> dict[str, Any]:
    """The notebook's `metadata.latent_gradients.grading`: created when absent with `create`, else read (empty when absent)."""
    if create:
        return nb.metadata.setdefault(COURSE, {}).setdefault(GRADING, {})
    return nb.get("metadata", {}).get(COURSE, {}).get(GRADING, {})
