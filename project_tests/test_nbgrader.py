"""The real nbgrader flow, end to end, on example submissions the test creates (course_fixtures/grading_examples.py).

In a temporary copy of the course directory: release the assignment, submit the reference solutions, the
untouched release, a partially correct notebook, one of each failure kind (raises, loops, dies, runs out of
memory, syntax error, edited test cells, patched checks, imported references, an unreadable file) and
the hostile submissions (grading_examples.py lists them by attack class); autograde them all in one batch
with 2 workers, generate feedback and the grades, and check every score, every reason in the feedback and
the class summary, that no hidden input and no script reaches a feedback, that the repository is unchanged
and that no process of the batch is left. Then `nbgrader autograde` run by hand gives the same scores.

The grading world is the toy world when its weights are present, as in production; set
LATENT_GRADIENTS_WORLD=random for a faster run on a tiny random world (any other world grades on the default).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from course_fixtures import grading_examples as examples
from grading.grader import settings
from part_utils import settings as course_settings

ROOT = Path(__file__).resolve().parent.parent

# One batch of every example on 2 busy cores takes several minutes: longer than the default per-test limit.
pytestmark = [pytest.mark.nbgrader, pytest.mark.slow, pytest.mark.timeout(2400)]

WORLD = "random" if course_settings.world() == "random" or not (ROOT / "part_utils" / "toy_world_data").exists() else "toy"
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
    "unreadable": "could not read or run",
    "hostile_writes_course": "sandbox blocked it",
    "hostile_spawns": "were killed",
    # 100 MB takes a while to send: on a loaded machine the cell may reach its time limit first.
    "hostile_floods": ("output truncated", "limit per cell"),
    "hostile_ignores_sigint": "stopped responding",
    "hostile_patches_sae": "hidden test (token_to_latent",
    "hostile_changes_world": "hidden test (token_to_latent",
    "hostile_unseen_reference": "hidden test (token_to_latent",
    "hostile_global_hook": "hidden test (token_to_latent",
    "stub_custom_exc": "hidden test (sparse_tensor",
    "hostile_shared_memory": "kernel died",
    "hostile_process_bomb": "stopped after",
    "hostile_rich_output": "rich output, removed by the grader",
    "hostile_reads_secrets": "refused /etc/shadow",
}
HOSTILE = ["hostile_writes_course", "hostile_changes_world", "hostile_spawns", "hostile_floods", "hostile_stderr",
           "hostile_ignores_sigint", "hostile_network", "hostile_patches_sae", "hostile_unseen_reference", "hostile_global_hook",
           "hostile_reads_inputs", "stub_custom_exc", "stub_clears_failures", "stub_emits_results", "stub_patches_grader",
           "hostile_reads_secrets", "hostile_writes_descriptors", "hostile_shared_memory", "hostile_process_bomb",
           "hostile_rich_output", "hostile_script", "hostile_forged_notes"]
LIVE_HANDLER = re.compile(r"<[a-zA-Z][^<>]*\son[a-z]+\s*=", re.IGNORECASE)
# A file of the account that grades, outside the course, that only it may read (0600): no kernel may read it.
PRIVATE_TEXT = "private to the account that grades: 5f0c"
# Graded again by `nbgrader autograde` run by hand, one process each, as an instructor would.
BY_HAND = ["solutions", "zz_stub", "partial", "stub_custom_exc"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        course_settings.WORLD_ENV: WORLD,
        # The slowest graded cell on the toy world takes well under this on 2 busy cores; the infinite
        # loop costs one timeout.
        course_settings.CELL_TIMEOUT_ENV: env.get(course_settings.CELL_TIMEOUT_ENV, "150" if WORLD == "toy" else "40"),
        # Interrupted cells that ignore SIGINT are given up on after this (the hostile loop).
        "GRADING_UNRESPONSIVE_TIMEOUT": "10",
        # A kernel with the world loaded peaks well below this; the out-of-memory example reaches it fast.
        "GRADING_MEMORY_GB": "4",  # the reference peaks near 3 GiB in the attention cell; the OOM example allocates without bound
        "PYTHONPATH": str(ROOT),
        "GRADING_SECRET": "project-tests-secret-1",
    })
    return env


def _git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--ignored=no"], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def _processes_with(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and "pytest" not in cmdline:
            found.append(cmdline)
    return found


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, float, str, dict]:
    course = tmp_path_factory.mktemp("course")
    shutil.copytree(ROOT / "nbgrader" / "source", course / "source")
    shutil.copy(ROOT / "nbgrader" / "nbgrader_config.py", course / "nbgrader_config.py")
    for step in (["-m", "nbgrader", "db", "assignment", "add", settings.ASSIGNMENT], ["-m", "nbgrader", "generate_assignment", settings.ASSIGNMENT]):
        result = _run(step, course)
        assert result.returncode == 0, result.stdout + result.stderr
    release = (course / "release" / settings.ASSIGNMENT / f"{settings.NOTEBOOK}.ipynb").read_text()
    assert "BEGIN HIDDEN TESTS" not in release and "### BEGIN SOLUTION" not in release
    listener = socket.create_server(("127.0.0.1", 0))  # the hostile submission's target: loopback only
    listener.settimeout(0.5)
    (ROOT / "build").mkdir(exist_ok=True)
    private = tempfile.NamedTemporaryFile("w", dir=ROOT / "build", prefix="private-")  # 0600
    private.write(PRIVATE_TEXT)
    private.flush()
    built = examples.build(course, loopback_port=listener.getsockname()[1], private_file=Path(private.name))
    examples.submit(course, built)
    status_before = _git_status()
    start = time.perf_counter()
    result = _run(["-m", "grading", "autograde", "--course", str(course), "--jobs", "2"], course)
    seconds = time.perf_counter() - start
    try:
        connected = listener.accept()[0] is not None
    except TimeoutError:
        connected = False
    listener.close()
    private.close()
    after = {"git status": (status_before, _git_status()), "connected": connected,
             "survivors": _processes_with(f"sleep {examples.LONG_LIVED}")}
    for step in (["-m", "grading", "feedback", "--course", str(course)], ["-m", "grading", "grades", "--course", str(course)]):
        done = _run(step, course)
        assert done.returncode == 0, done.stdout + done.stderr
    return course, built, seconds, result.stdout + result.stderr, after


def _scores(course: Path) -> dict[str, dict[str, str]]:
    with open(course / "reports" / "scores.csv", newline="") as file:
        return {row["student"]: row for row in csv.DictReader(file)}


def test_batch_completes_and_every_submission_has_a_row(graded, figures) -> None:
    course, built, seconds, output, _ = graded
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
    "syntax_error", "edited_tests", "monkeypatch", "imports_solutions", "unreadable", "reads_demonstration", *HOSTILE, "zz_stub",
])
def test_scores_per_exercise(graded, student: str, figures) -> None:
    course, built, _, output, _ = graded
    row = _scores(course)[student]
    expected = built[student][1]
    got = {exercise: float(row[exercise]) for exercise in expected}
    assert got == pytest.approx(expected), f"{student}: {row}"
    figures.add("nbgrader", f"{student}: {float(row['total']):g} / {sum(examples.POINTS.values())} (expected {sum(expected.values()):g})")


@pytest.mark.parametrize("student", list(REASONS))
def test_feedback_says_why(graded, student: str) -> None:
    course = graded[0]
    html = (course / "feedback" / student / settings.ASSIGNMENT / f"{settings.NOTEBOOK}.html").read_text()
    reasons = REASONS[student] if isinstance(REASONS[student], tuple) else (REASONS[student],)
    assert any(reason in html for reason in reasons), f"{student}'s feedback does not mention {reasons!r}"
    assert "Grading notes" in html


def test_demonstrations_are_not_run_unless_the_learner_reads_them(graded) -> None:
    """The released demonstrations are left out (grading/grader/demonstrations.py), and say so, unless the
    learner's own code reads a name they bind: then they run, and the scores are the same (test_scores_per_exercise)."""
    course = graded[0]
    for student, skipped in (("solutions", True), ("zz_stub", True), ("reads_demonstration", False)):
        html = (course / "feedback" / student / settings.ASSIGNMENT / f"{settings.NOTEBOOK}.html").read_text()
        assert ("not run when grading" in html) == skipped, student


def test_feedback_hides_hidden_tests(graded) -> None:
    course = graded[0]
    for html in (course / "feedback").glob(f"*/{settings.ASSIGNMENT}/*.html"):
        text = html.read_text()
        # the one learner whose own cell quotes the marker sees it; no one sees a hidden test
        assert "BEGIN HIDDEN TESTS" not in text or html.parts[-3] == "hostile_forged_notes", html


def test_feedback_runs_nothing_and_only_the_grader_writes_notes(graded) -> None:
    """No script, handler or frame of a submission reaches a feedback page or an autograded notebook; every page
    carries a Content-Security-Policy; the grader's notes are the one framed block, whatever a submission displays."""
    course = graded[0]
    for html in (course / "feedback").glob(f"*/{settings.ASSIGNMENT}/*.html"):
        text = html.read_text()
        # no element with an event handler (the submission's code is shown as escaped text: `&lt;img ... onerror=`)
        assert "<script" not in text.lower() and not LIVE_HANDLER.search(text) and "<iframe" not in text.lower(), html
        assert "Content-Security-Policy" in text and text.count('<section class="lg-grader-notes">') == 1, html
    for notebook in (course / "autograded").glob(f"*/{settings.ASSIGNMENT}/*.ipynb"):
        outputs = json.dumps([cell.get("outputs", []) for cell in json.loads(notebook.read_text())["cells"]])
        assert "<script" not in outputs and "onerror" not in outputs and "hostileScriptRan = 3" not in outputs, notebook
    forged = (course / "feedback" / "hostile_forged_notes" / settings.ASSIGNMENT / f"{settings.NOTEBOOK}.html").read_text()
    assert "FORGED-NOTES" in forged and forged.index('<section class="lg-grader-notes">') < forged.index("FORGED-NOTES")
    assert forged.count("FORGED-NOTES") == forged[forged.index("</section>") :].count("FORGED-NOTES")


def test_no_kernel_read_a_secret_or_wrote_through_a_descriptor(graded) -> None:
    course = graded[0]
    shadow = Path("/etc/shadow").read_text().splitlines()[0] if os.access("/etc/shadow", os.R_OK) else "root:"
    for path in [*(course / "feedback").rglob("*.html"), *(course / "autograded").rglob("*.ipynb")]:
        text = path.read_text()
        assert PRIVATE_TEXT not in text and shadow not in text, path
    graded_notebook = json.loads((course / "autograded" / "hostile_writes_descriptors" / settings.ASSIGNMENT / f"{settings.NOTEBOOK}.ipynb").read_text())
    assert "wrote 16 MiB" not in json.dumps([cell.get("outputs", []) for cell in graded_notebook["cells"]])
    assert max(p.stat().st_size for p in (course / "reports").rglob("*") if p.is_file()) < 2**24


def test_no_hidden_input_reaches_the_feedback(graded) -> None:
    """The hidden prompts (those not in the lesson itself) and each student's world seed appear in no feedback, even
    where a submission printed its environment, /proc and the grader's modules."""
    from grading.grader import hidden_params

    course = graded[0]
    release = (course / "release" / settings.ASSIGNMENT / f"{settings.NOTEBOOK}.ipynb").read_text()
    prompts = [prompt for prompt in hidden_params.PROMPTS if prompt not in release]
    for student in ("hostile_reads_inputs", "solutions"):
        seed, _ = hidden_params.candidates(_env()["GRADING_SECRET"], student)
        html = (course / "feedback" / student / settings.ASSIGNMENT / f"{settings.NOTEBOOK}.html").read_text()
        assert str(seed) not in html, student
    for html in (course / "feedback").glob(f"*/{settings.ASSIGNMENT}/*.html"):
        text = html.read_text()
        assert not [prompt for prompt in prompts if prompt in text], html


def test_feedback_math_needs_no_cdn(graded) -> None:
    """The lesson's TeX is MathML in the feedback (grading/grader/offline_math.py): drawn offline, with no script."""
    html = (graded[0] / "feedback" / "solutions" / settings.ASSIGNMENT / f"{settings.NOTEBOOK}.html").read_text()
    assert "<math" in html and "$J_{ij}" not in html


def test_integrity_is_flagged_in_the_summary(graded) -> None:
    course = graded[0]
    scores = _scores(course)
    assert "token_to_latent" in scores["monkeypatch"]["integrity"] and "latent_to_logit" in scores["monkeypatch"]["integrity"]
    assert "latent_to_logit" in scores["imports_solutions"]["integrity"]
    assert not scores["solutions"]["integrity"] and not scores["partial"]["integrity"]
    summary = (course / "reports" / "summary.md").read_text()
    assert "Integrity flags" in summary and "monkeypatch" in summary
    assert (course / "reports" / "summary.html").stat().st_size > 10_000


def test_the_batch_leaves_no_trace(graded) -> None:
    """The sandbox held: the repository is as it was, no process is left, nothing reached the network."""
    after = graded[4]
    before, now = after["git status"]
    assert now == before, f"the batch changed the repository:\n{now}"
    assert not after["survivors"], after["survivors"]
    assert not after["connected"], "a submission reached a loopback port from its kernel"


def test_feedback_is_bounded(graded) -> None:
    course = graded[0]
    largest = max(path.stat().st_size for path in (course / "feedback").glob(f"*/{settings.ASSIGNMENT}/*.html"))
    assert largest < 20e6, f"a feedback file has {largest:,} bytes"
    flooded = course / "autograded" / "hostile_floods" / settings.ASSIGNMENT / f"{settings.NOTEBOOK}.ipynb"
    assert flooded.stat().st_size < 5e6


def test_nbgrader_by_hand_grades_alike(graded) -> None:
    """`nbgrader autograde` in the course directory, as nbgrader's docs say, gives the batch's scores."""
    course = graded[0]
    batch = _scores(course)
    hand = [subprocess.Popen([sys.executable, "-m", "nbgrader", "autograde", settings.ASSIGNMENT, "--student", student, "--force"],
                             cwd=course, env=_env() | {"GRADING_THREADS": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for student in BY_HAND]
    assert all(process.wait(timeout=1800) == 0 for process in hand)
    done = _run(["-m", "grading", "grades", "--course", str(course)], course)
    assert done.returncode == 0, done.stdout + done.stderr
    again = _scores(course)
    exercises = list(examples.POINTS)
    for student in BY_HAND:
        assert [again[student][e] for e in exercises] == [batch[student][e] for e in exercises], student
