"""The real nbgrader flow, end to end, on example submissions the test creates (grading/examples.py).

In a temporary copy of the course directory: release the assignment, submit the reference solutions,
the untouched release, a partially correct notebook and one of each failure kind (raises, infinite
loop, os._exit, out of memory, syntax error, edited and deleted test cells, monkeypatched checks,
imported reference solutions, an unreadable file), autograde them all with 2 workers, generate
feedback and the grades, and check every score, every reason in the feedback and the class summary.

The grading world is the toy world when its weights are present, as in production; set
LATENT_GRADIENTS_TEST_GRADING_WORLD=random for a faster run on a tiny random world.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grading import examples, settings

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.nbgrader, pytest.mark.slow]

WORLD = os.environ.get("LATENT_GRADIENTS_TEST_GRADING_WORLD") or ("toy" if (ROOT / "part_utils" / "toy_world_data").exists() else "random")
# Reasons each failure kind must give in its feedback (HTML, so quotes and brackets are escaped).
REASONS = {
    "raises": "ValueError",
    "infinite_loop": "limit of",
    "kernel_exit": "kernel died",
    "out_of_memory": "memory",
    "syntax_error": "SyntaxError",
    "edited_tests": "restored",
    "monkeypatch": "Integrity",
    "imports_solutions": "reference solutions",
    "unreadable": "could not be read",
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "GRADING_WORLD": WORLD,
        # The slowest graded cell on the toy world takes well under this on 2 busy cores; the infinite
        # loop costs one timeout.
        "GRADING_CELL_TIMEOUT": env.get("GRADING_CELL_TIMEOUT", "150" if WORLD == "toy" else "40"),
        # A kernel with the world loaded peaks well below this; the out-of-memory example reaches it fast.
        "GRADING_MEMORY_GB": "3",
        "PYTHONPATH": str(ROOT),
    })
    return env


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, float, str]:
    course = tmp_path_factory.mktemp("course")
    shutil.copytree(ROOT / "nbgrader" / "source", course / "source")
    shutil.copy(ROOT / "nbgrader" / "nbgrader_config.py", course / "nbgrader_config.py")
    for step in (["-m", "nbgrader", "db", "assignment", "add", settings.ASSIGNMENT], ["-m", "nbgrader", "generate_assignment", settings.ASSIGNMENT]):
        result = _run(step, course)
        assert result.returncode == 0, result.stdout + result.stderr
    release = (course / "release" / settings.ASSIGNMENT / f"{settings.NOTEBOOK}.ipynb").read_text()
    assert "BEGIN HIDDEN TESTS" not in release and "grading.hidden" not in release and "### BEGIN SOLUTION" not in release
    built = examples.build(course)
    examples.submit(course, built)
    start = time.perf_counter()
    result = _run(["-m", "grading", "autograde", "--course", str(course), "--jobs", "2"], course)
    seconds = time.perf_counter() - start
    for step in (["-m", "grading", "feedback", "--course", str(course)], ["-m", "grading", "grades", "--course", str(course)]):
        done = _run(step, course)
        assert done.returncode == 0, done.stdout + done.stderr
    return course, built, seconds, result.stdout + result.stderr


def _scores(course: Path) -> dict[str, dict[str, str]]:
    with open(course / "reports" / "scores.csv", newline="") as file:
        return {row["student"]: row for row in csv.DictReader(file)}


def test_batch_completes_and_every_submission_has_a_row(graded, figures) -> None:
    course, built, seconds, output = graded
    assert "FAILED" not in output, output
    with open(course / "reports" / "grades.csv", newline="") as file:
        students = {row["student_id"] for row in csv.DictReader(file)}
    assert students == set(built), output
    figures.add("nbgrader", f"{len(built)} example submissions graded on the {WORLD} world with 2 workers in {seconds:.0f} s ({seconds / len(built):.1f} s per submission)")
    for line in output.splitlines():
        if line.startswith("  "):
            figures.add("nbgrader", line)


@pytest.mark.parametrize("student", [
    "solutions", "release", "partial", "raises", "infinite_loop", "kernel_exit", "out_of_memory",
    "syntax_error", "edited_tests", "monkeypatch", "imports_solutions", "unreadable",
])
def test_scores_per_exercise(graded, student: str, figures) -> None:
    course, built, _, output = graded
    row = _scores(course)[student]
    expected = built[student][1]
    got = {exercise: float(row[exercise]) for exercise in expected}
    assert got == pytest.approx(expected), f"{student}: {row}"
    figures.add("nbgrader", f"{student}: {float(row['total']):g} / {sum(examples.POINTS.values())} (expected {sum(expected.values()):g})")


@pytest.mark.parametrize("student", list(REASONS))
def test_feedback_says_why(graded, student: str) -> None:
    course = graded[0]
    html = (course / "feedback" / student / settings.ASSIGNMENT / f"{settings.NOTEBOOK}.html").read_text()
    assert REASONS[student] in html, f"{student}'s feedback does not mention {REASONS[student]!r}"
    assert "Grading notes" in html


def test_feedback_hides_hidden_tests(graded) -> None:
    course = graded[0]
    for html in (course / "feedback").glob(f"*/{settings.ASSIGNMENT}/*.html"):
        text = html.read_text()
        assert "grading.hidden" not in text and "BEGIN HIDDEN TESTS" not in text, html


def test_integrity_is_flagged_in_the_summary(graded) -> None:
    course = graded[0]
    scores = _scores(course)
    assert "token_to_latent" in scores["monkeypatch"]["integrity"] and "latent_to_logit" in scores["monkeypatch"]["integrity"]
    assert "latent_to_logit" in scores["imports_solutions"]["integrity"]
    assert not scores["solutions"]["integrity"] and not scores["partial"]["integrity"]
    summary = (course / "reports" / "summary.md").read_text()
    assert "Integrity flags" in summary and "monkeypatch" in summary
    assert (course / "reports" / "summary.html").stat().st_size > 10_000
