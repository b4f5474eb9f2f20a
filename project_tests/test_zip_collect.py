"""Submissions from an LMS: `make zip-collect` (nbgrader's zip_collect) on zips built here, then the grading commands.

- Canvas: a "Download Submissions" zip with two learners' notebooks under Canvas's file names (one on time with
  the reference solutions, one late re-submission that solves SparseTensor only) and a file that is not the
  notebook. zip_collect files them under submitted/<Canvas user id>/; autograde, feedback and grades follow
  (as `make autograde`, `make feedback`, `make grades` run them): grades.csv has one row per learner, 14 and 2.
- Moodle: a "Download all submissions" zip (a folder per participant): both land under submitted/<participant id>/.

All in a temporary copy of the course directory; the grading world is chosen as in test_nbgrader.py.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from test_nbgrader import WORLD  # project_tests/test_nbgrader.py: the same grading world

from course_fixtures import grading_examples as examples
from grading.grader import settings
from part_utils import settings as course_settings

pytestmark = [pytest.mark.nbgrader, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = f"{settings.NOTEBOOK}.ipynb"


def _env() -> dict[str, str]:
    # The grader's own limits (grading/grader/settings.py), as `make autograde` runs: test_nbgrader.py's tighter memory
    # limit is for its out-of-memory example; the cell limit allows for a busy machine.
    return {**os.environ, course_settings.WORLD_ENV: WORLD, course_settings.CELL_TIMEOUT_ENV: "600", "PYTHONPATH": str(ROOT)}


def _run(args: list[str], cwd: Path) -> str:
    result = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    course = tmp_path_factory.mktemp("lms") / "course"
    shutil.copytree(ROOT / "nbgrader" / "source", course / "source")
    shutil.copy(ROOT / "nbgrader" / "nbgrader_config.py", course / "nbgrader_config.py")
    _run([sys.executable, "-m", "nbgrader", "generate_assignment", settings.ASSIGNMENT], course)
    _run([sys.executable, "-m", "grading", "secret", "--course", str(course)], course)  # as `make release` does
    return course


def _notebooks(course: Path) -> dict[str, str]:
    """The reference solutions, and SparseTensor solved alone (2 of 16 points), as notebook text."""
    release = nbformat.read(course / "release" / settings.ASSIGNMENT / NOTEBOOK, as_version=4)
    source = nbformat.read(course / "source" / settings.ASSIGNMENT / NOTEBOOK, as_version=4)
    return {
        "all": nbformat.writes(examples.solved(release, source, None)),
        "sparse_tensor": nbformat.writes(examples.solved(release, source, {"sparse_tensor"})),
    }


def _zip_collect(course: Path, archive: Path, lms: str) -> str:
    make = ["make", "-o", ".venv/.installed", "zip-collect", f"ZIP={archive}", f"LMS={lms}", f"COURSE_DIR={course}"]
    return _run(make, ROOT)


def _submitted(course: Path) -> set[str]:
    return {path.relative_to(course / "submitted").as_posix() for path in (course / "submitted").glob(f"*/{settings.ASSIGNMENT}/*")}


@pytest.mark.timeout(1800)  # two submissions graded on the toy world, side by side, on a busy machine
def test_canvas_zip_is_collected_graded_and_has_a_row_per_learner(course: Path, tmp_path: Path, figures) -> None:
    notebooks = _notebooks(course)
    archive = tmp_path / "submissions.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr(f"doejane_12345_678901_{NOTEBOOK}", notebooks["all"])
        zipped.writestr(f"roebob_LATE_23456_678902_{settings.NOTEBOOK}-1.ipynb", notebooks["sparse_tensor"])
        zipped.writestr("roebob_LATE_23456_678902_notes.txt", "not a notebook")
    output = _zip_collect(course, archive, "canvas")
    assert _submitted(course) == {f"12345/{settings.ASSIGNMENT}/{NOTEBOOK}", f"23456/{settings.ASSIGNMENT}/{NOTEBOOK}"}, output

    # The two learners side by side, one per core, as `make autograde JOBS=2` grades them.
    for command in (["autograde", "--jobs", "2"], ["feedback"], ["grades"]):
        _run([sys.executable, "-m", "grading", *command, "--course", str(course)], course)
    with open(course / "reports" / "grades.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert sorted(row["student_id"] for row in rows) == ["12345", "23456"], rows
    scores = {row["student_id"]: float(row["score"]) for row in rows}
    assert scores == {"12345": float(sum(examples.POINTS.values())), "23456": float(examples.POINTS["sparse_tensor"])}, rows
    for student in scores:
        html = (course / "feedback" / student / settings.ASSIGNMENT / f"{settings.NOTEBOOK}.html").read_text()
        assert "BEGIN HIDDEN TESTS" not in html
    figures.add("nbgrader", f"Canvas zip -> make zip-collect -> autograde/feedback/grades on the {WORLD} world: grades.csv rows {scores}")


def test_moodle_zip_is_collected(course: Path, tmp_path: Path) -> None:
    notebooks = _notebooks(course)
    archive = tmp_path / "moodle.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr(f"Jane Doe_3141_assignsubmission_file_/{NOTEBOOK}", notebooks["all"])
        zipped.writestr(f"Bob Roe_2718_assignsubmission_file_/{NOTEBOOK}", notebooks["sparse_tensor"])
    shutil.rmtree(course / "submitted", ignore_errors=True)
    output = _zip_collect(course, archive, "moodle")
    assert _submitted(course) == {f"3141/{settings.ASSIGNMENT}/{NOTEBOOK}", f"2718/{settings.ASSIGNMENT}/{NOTEBOOK}"}, output
