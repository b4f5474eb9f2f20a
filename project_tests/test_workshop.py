"""A workshop day, end to end: `make workshop` (a real JupyterHub), an instructor and two learners in Debian's
Chromium (Playwright), nbgrader's own buttons from release to feedback.

The instructor releases the assignment. Learner 1 submits the reference solutions; learner 2 solves only
SparseTensor and adds a cell that displays a script and one that looks for the exchange, learner 1's files,
the instructor's and /proc/1/environ. Learner 1's forgery under learner 2's name is rejected by collect.
The instructor autogrades the two and a stub and a hostile stub with formgrader's button while `python -m
grading autograde` grades the same files: the gradebooks agree cell by cell. Learner 2's autograded notebook
runs no script in formgrader; learner 2's feedback shows the kernel saw nothing. After the hub and `make
workshop-stop`: no sudoers rule, the repository's modes back, no process or scratch folder left.

The board, in a test of its own: learner 1 passes exercise 1, learner 2 runs exercise 3 with the error term
never set; the board shows both within 2 s, the class panel counts the mistake, learner 2 gets 403 on the
board and on learner 1's events. Screenshots: build/screenshots/workshop_*.png. Needs root, npm, sudo and
Chromium; skips, saying why, only where one is missing. Its accounts (ws-*) are removed at the end.
"""

from __future__ import annotations

import csv
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook
from test_browser import CHROMIUM_ARGS, SCREENSHOTS, find_chromium

from course_fixtures import grading_examples
from course_fixtures.grading_examples import POINTS
from grading import cell_metadata
from grading.grader import settings
from grading.grader.sandbox import GRADER_ACCOUNT, SCRATCH_PREFIX
from workshop.prepare import KERNEL_LAUNCHER, PRIVATE_REPO_PATHS, SUDOERS_RULE, as_user, instructor_env

from lab_server import free_port  # project_tests/lab_server.py

pytestmark = [pytest.mark.browser, pytest.mark.workshop, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
INSTRUCTOR, LEARNER_1, LEARNER_2 = "ws-teacher", "ws-alice", "ws-bob"
ROSTER = [(INSTRUCTOR, "instructor", "Ada Teacher"), (LEARNER_1, "learner", "Alice Example"), (LEARNER_2, "learner", "Bob Example")]
HIDDEN_MARKERS = ("BEGIN HIDDEN TESTS", "### BEGIN SOLUTION")
SCORE = re.compile(r"\(Score: ([\d.]+) / ([\d.]+)\)")
ACTION_TIMEOUT_MS = 600_000  # one autograde took 200 s on 2 cores at load average 16
# nbgrader 0.9.6's feedback template loads MathJax 2.7 from a CDN, whatever the exporter's settings; the page
# is blocked from fetching it, and needs none: its math is MathML (grading/grader/offline_math.py).
# Every other request must stay on the hub.
FEEDBACK_MATHJAX = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/"
# Learner 2's cell for the instructor's eyes: a script, an event handler and a JavaScript output, each of which
# would set a global of the page that shows it.
# Learner 2's cell that looks for what a grading kernel must not see; the feedback shows what it found.
PROBE = """import os, pwd

for path in {paths!r}:
    try:
        found = os.listdir(path) if os.path.isdir(path) else open(path, "rb").read(64)
    except OSError as error:
        found = None
    print("PROBE-" + ("SAW" if found else "NOTHING"), path)
print("PROBE-ACCOUNT", pwd.getpwuid(os.getuid()).pw_name)
print("PROBE-VARIABLES", sorted(name for name in os.environ if "TOKEN" in name or "SECRET" in name or "JUPYTERHUB" in name))
"""
# Graded with formgrader's button beside the two learners: placed in the course by the instructor.
ADDED_SUBMISSIONS = {"ws-stub": "release", "ws-hooks": "stub_custom_exc"}
HOSTILE_DISPLAY = """from IPython.display import HTML, Javascript, display

display(HTML('<p>HOSTILE-' + 'DISPLAY</p><script>window.hostileScriptRan = 1; window.parent.hostileScriptRan = 1</script>'
             '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" onerror="window.hostileScriptRan = 2" onload="window.hostileScriptRan = 2">'))
display(Javascript('window.hostileScriptRan = 3; window.parent.hostileScriptRan = 3'))
"""


@dataclass
class Workshop:
    base_url: str
    directory: Path
    passwords: dict[str, str]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def _remove_accounts() -> None:
    for name, _, _ in ROSTER:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        subprocess.run(["userdel", "--remove", "--force", name], capture_output=True)


def stop_process_group(process: subprocess.Popen, timeout_s: float = 60) -> None:
    """Stop make and the hub it started (one process group): SIGTERM lets the hub stop every server and the proxy;
    whatever is left after `timeout_s` (a hub stuck in its shutdown) is killed."""
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=timeout_s)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(1)
    os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def workshop() -> Iterator[Workshop]:
    if find_chromium() is None:
        pytest.skip("No Chromium installed: the workshop test needs Debian's chromium package (`apt-get install chromium`).")
    if os.geteuid() != 0:
        pytest.skip("The workshop creates one Linux account per learner: run this test as root (CI does).")
    if shutil.which("npm") is None:
        pytest.skip("No npm: the hub's proxy (configurable-http-proxy) is installed with npm (`apt-get install npm`).")
    if shutil.which("sudo") is None:
        pytest.skip("No sudo: the instructor's grading kernels start through a root launcher that sudo runs (`apt-get install sudo`).")
    # Not under pytest's own temporary folder, which only root may enter: every account reaches the exchange.
    work = Path(tempfile.mkdtemp(prefix="latent-gradients-workshop-"))
    os.chmod(work, 0o755)
    roster = work / "roster.csv"
    with roster.open("w", newline="") as file:
        csv.writer(file).writerows([("username", "role", "name"), *ROSTER])
    directory, port = work / "state", free_port()
    log_path = work / "workshop.log"
    _remove_accounts()  # a previous run that was killed before its clean-up
    # Another test may have built the grader's kernel cache as root; the instructor who grades here cannot
    # write the repository, so make workshop must build it.
    shutil.rmtree(settings.KERNEL_CACHE, ignore_errors=True)
    modes_before = _private_repo_modes()
    started = time.time()
    command = ["make", "-o", ".venv/.installed", "workshop", f"ROSTER={roster}", f"WORKSHOP_DIR={directory}", f"WORKSHOP_PORT={port}"]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"make workshop exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{base_url}/hub/api/", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the hub did not answer within 300 s:\n{log_path.read_text()[-4000:]}") from None
                time.sleep(1)
        with (directory / "passwords.csv").open(newline="") as file:
            passwords = {row["username"]: row["password"] for row in csv.DictReader(file)}
        yield Workshop(base_url, directory, passwords, log_path)
    finally:
        stop_process_group(process)
        stopped = subprocess.run(["make", "-o", ".venv/.installed", "workshop-stop", f"ROSTER={roster}", f"WORKSHOP_DIR={directory}"],
                                 cwd=ROOT, capture_output=True, text=True)  # fmt: skip
        left = _left_behind(started)
        _remove_accounts()
        shutil.rmtree(work, ignore_errors=True)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not SUDOERS_RULE.exists() and not KERNEL_LAUNCHER.exists()
    assert _private_repo_modes() == modes_before, "make workshop-stop did not give the repository back its owners and modes"
    assert left == ([], []), f"left after the hub stopped (processes, scratch folders): {left}"


def _left_behind(started: float, timeout_s: float = 10) -> tuple[list[str], list[str]]:
    """Processes of the workshop's accounts, and of the grading account started since `started`; kernels' scratch
    folders those accounts made since then. The hub's servers and the kernels get `timeout_s` to exit."""
    uids = {pwd.getpwnam(name).pw_uid for name, _, _ in ROSTER}
    grader = pwd.getpwnam(GRADER_ACCOUNT).pw_uid
    deadline = time.monotonic() + timeout_s
    while True:
        listed = subprocess.run(["ps", "-e", "-o", "uid=,etimes=,args="], capture_output=True, text=True, check=True).stdout.splitlines()
        rows = [line.split(None, 2) for line in listed]
        processes = [" ".join(row) for row in rows if int(row[0]) in uids or (int(row[0]) == grader and int(row[1]) < time.time() - started)]
        folders = [str(folder) for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*")
                   if folder.lstat().st_uid in uids | {grader} and folder.lstat().st_mtime >= started]  # fmt: skip
        if not (processes or folders) or time.monotonic() > deadline:
            return processes, folders
        time.sleep(0.5)


def _private_repo_modes() -> dict[str, tuple[int, int]]:
    # Bytecode caches are Python's, not the repository's: the launcher, run as root, may write the grader's
    # first (a fresh clone has none), inside folders that stay closed to learners while the workshop runs.
    paths = [path for name in PRIVATE_REPO_PATHS for path in [ROOT / name, *(ROOT / name).rglob("*")] if "__pycache__" not in path.parts]
    return {str(path): (path.lstat().st_gid, path.lstat().st_mode) for path in paths}


@pytest.fixture(scope="module")
def browser(workshop: Workshop) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Person:
    """One person's browser session (own cookies): logged in to the hub, with their JupyterLab open."""

    def __init__(self, browser, workshop: Workshop, username: str, outside: list[str]) -> None:
        self.workshop, self.username = workshop, username
        self.context = browser.new_context(viewport={"width": 1600, "height": 1000})

        def guard(route, request) -> None:
            if request.url.startswith(workshop.base_url) or request.url.startswith(("data:", "blob:")):
                route.continue_()
            else:
                outside.append(request.url)
                route.abort()

        self.context.route("**/*", guard)
        self.page = self.context.new_page()
        self.page.set_default_timeout(120_000)

    @property
    def server(self) -> str:
        return f"{self.workshop.base_url}/user/{self.username}"

    def log_in(self) -> None:
        page = self.page
        page.goto(f"{self.workshop.base_url}/hub/login")
        page.fill("#username_input", self.username)
        page.fill("#password_input", self.workshop.passwords[self.username])
        page.click("#login_submit")
        page.wait_for_url(re.compile(rf"/user/{self.username}/lab"), timeout=180_000)
        page.wait_for_selector("#jp-main-dock-panel", timeout=180_000)

    def shot(self, name: str, locator=None) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (locator or self.page).screenshot(path=str(SCREENSHOTS / f"workshop_{name}.png"), animations="disabled")

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        """Their own server's REST API, with their browser's cookies (as JupyterLab calls it)."""
        xsrf = next((c["value"] for c in self.context.cookies() if c["name"] == "_xsrf" and f"/user/{self.username}" in c["path"]), "")
        response = self.page.request.fetch(f"{self.server}/api/{path}", method=method, headers={"X-XSRFToken": xsrf},
                                           data=json.dumps(body) if body is not None else None)  # fmt: skip
        assert response.ok, f"{method} {path}: {response.status} {response.text()[:500]}"
        return response.json() if response.text() else {}

    # --- nbgrader's Assignments tab -------------------------------------------------------------------------------
    def open_assignments(self) -> None:
        page = self.page
        page.goto(f"{self.server}/lab?reset")  # a fresh layout: only the Assignments tab that opens next
        page.wait_for_selector("#jp-main-dock-panel")
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Nbgrader$")).click()
        page.locator(".lm-Menu-item", has_text="Assignment List").click()
        page.wait_for_selector("#released_assignments_list")
        disabled = page.evaluate("() => JSON.parse(document.getElementById('jupyter-config-data').textContent).disabledExtensions")
        assert {"@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:formgrader"} <= set(disabled), f"{self.username} has instructor tools: {disabled}"

    def assignment_button(self, section: str, label: str):
        return self.page.locator(f"#{section}_assignments_list button", has_text=re.compile(rf"^{label}$"))

    def fetch(self) -> None:
        self.open_assignments()
        button = self.assignment_button("released", "Fetch")
        button.wait_for()
        self.shot(f"{self.username}_1_released")
        button.click()
        self.assignment_button("fetched", "Submit").wait_for()
        self.shot(f"{self.username}_2_fetched")

    def submit(self) -> None:
        self.open_assignments()
        self.assignment_button("fetched", "Submit").click()
        self.page.locator("#submitted_assignments_list .item_status, #submitted_assignments_list .list_item").first.wait_for()
        self.shot(f"{self.username}_4_submitted")

    def fetch_feedback(self) -> str:
        self.open_assignments()
        button = self.assignment_button("submitted", "Fetch Feedback")
        button.wait_for()
        button.click()
        self.page.wait_for_function("() => !document.body.innerText.includes('Fetching Feedback...')", timeout=60_000)
        feedback = self.api("GET", f"contents/{settings.ASSIGNMENT}/feedback")["content"]
        assert feedback, f"{self.username}: no feedback folder after Fetch Feedback"
        path = f"{settings.ASSIGNMENT}/feedback/{feedback[-1]['name']}/{settings.NOTEBOOK}.html"
        self.page.goto(f"{self.server}/files/{path}")
        self.shot(f"{self.username}_6_feedback")
        return self.api("GET", f"contents/{path}?type=file&format=text")["content"]


def solved_notebook(fetched: dict, exercises: set[str] | None) -> dict:
    """The notebook the learner fetched, with the reference solutions of `exercises` (all when None) put in."""
    source = nbformat.read(ROOT / "nbgrader" / "source" / settings.ASSIGNMENT / f"{settings.NOTEBOOK}.ipynb", as_version=4)
    answers = {
        cell_metadata.grade_id(cell): "\n".join(line for line in cell.source.splitlines() if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)
        for cell in source.cells
        if cell_metadata.is_solution(cell)
    }
    for cell in fetched["cells"]:
        grade_id = cell_metadata.grade_id(cell)
        if grade_id in answers and (exercises is None or cell_metadata.exercise_of(cell) in exercises):
            cell["source"] = answers[grade_id]
    return fetched


def formgrader_action(person: Person, column: str, name: str) -> None:
    """Click formgrader's button in `column` of the assignment's row; its dialog must say it succeeded."""
    page = person.page
    page.locator(f"tr:has(td.name:has-text('{settings.ASSIGNMENT}')) td.{column} a").click()
    modal = page.locator("#success-modal, #error-modal")
    modal.wait_for(timeout=ACTION_TIMEOUT_MS)
    person.shot(f"instructor_{name}", page.locator(".modal-dialog"))
    assert page.locator("#success-modal").count() == 1, f"formgrader's {column} failed:\n{modal.inner_text()[:3000]}"
    page.locator("#success-modal button[data-dismiss='modal']").first.click()
    modal.wait_for(state="detached")


def refused_on_disk(username: str, path: Path) -> bool:
    """Whether `username`'s Linux account (the account their server and kernels run as) is refused reading `path`."""
    result = subprocess.run(["runuser", "-u", username, "--", "cat", str(path)], capture_output=True, text=True)
    return result.returncode != 0 and "Permission denied" in result.stderr


def add_submissions(workshop: Workshop, course: Path) -> None:
    """The instructor's course gets a stub and a hostile stub (course_fixtures), as collected submissions of two
    more students of the gradebook."""
    built = grading_examples.build(course)
    env = instructor_env(workshop.directory, course)
    for student, example in ADDED_SUBMISSIONS.items():
        as_user(INSTRUCTOR, env, sys.executable, "-m", "nbgrader", "db", "student", "add", student)
        grading_examples.submit(course, {student: built[example]})
        # as nbgrader's submit writes it: release_feedback files the feedback under it
        (course / "submitted" / student / settings.ASSIGNMENT / "submission_secret.txt").write_text(secrets.token_hex(16))
    account = pwd.getpwnam(INSTRUCTOR)
    subprocess.run(["chown", "-R", f"{account.pw_uid}:{account.pw_gid}", str(course / "submitted")], check=True)


def gradebook_scores(course: Path, students: list[str]) -> dict[str, dict[str, float]]:
    """Each student's score per graded cell, from the course's gradebook."""
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        return {student: {grade.name: grade.score for grade in gradebook.find_submission_notebook(settings.NOTEBOOK, settings.ASSIGNMENT, student).grades}
                for student in students}  # fmt: skip


@dataclass
class BatchGrading:
    """`python -m grading autograde --jobs 2` of the instructor's collected submissions, in a course of its own
    with the instructor's secret (the same hidden inputs), run beside formgrader's button."""

    course: Path
    students: list[str]
    process: subprocess.Popen

    @classmethod
    def start(cls, teacher_course: Path, students: list[str]) -> BatchGrading:
        course = Path(tempfile.mkdtemp(prefix="latent-gradients-batch-"))
        os.chmod(course, 0o755)  # as a course folder is made: the grader's sandbox check reads its folder on sys.path
        for name in ("source", "submitted"):
            shutil.copytree(teacher_course / name, course / name)
        shutil.copy(ROOT / "nbgrader" / "nbgrader_config.py", course / "nbgrader_config.py")
        shutil.copy(teacher_course / ".grading_secret", course / ".grading_secret")
        env = {name: value for name, value in os.environ.items() if name != settings.SECRET_ENV} | {"PYTHONPATH": str(ROOT)}
        script = (f"{sys.executable} -m nbgrader db assignment add {settings.ASSIGNMENT} && "
                  f"{sys.executable} -m nbgrader generate_assignment {settings.ASSIGNMENT} && "
                  f"{sys.executable} -m grading autograde --course {course} --jobs 2")  # fmt: skip
        log = (course / "batch.log").open("w")
        return cls(course, students, subprocess.Popen(["sh", "-c", script], cwd=course, env=env, stdout=log, stderr=subprocess.STDOUT))

    def scores(self) -> dict[str, dict[str, float]]:
        try:
            assert self.process.wait(timeout=ACTION_TIMEOUT_MS / 1000) == 0, (self.course / "batch.log").read_text()[-3000:]
            return gradebook_scores(self.course, self.students)
        finally:
            shutil.rmtree(self.course, ignore_errors=True)


@pytest.mark.timeout(1800)
def test_workshop_day(workshop: Workshop, browser, figures) -> None:
    outside: list[str] = []
    people = [Person(browser, workshop, name, outside) for name in (INSTRUCTOR, LEARNER_1, LEARNER_2)]
    try:
        _workshop_day(workshop, *people, outside, figures)
    except Exception:
        for person in people:  # what each page showed when the step failed
            person.shot(f"{person.username}_at_failure")
        raise


def _workshop_day(workshop: Workshop, teacher: Person, alice: Person, bob: Person, outside: list[str], figures) -> None:
    start = time.perf_counter()

    # The instructor releases the assignment from formgrader.
    teacher.log_in()
    disabled = teacher.page.evaluate("() => JSON.parse(document.getElementById('jupyter-config-data').textContent).disabledExtensions")
    assert "@jupyter/nbgrader:assignment-list" in disabled and "@jupyter/nbgrader:formgrader" not in disabled, disabled
    teacher.page.goto(f"{teacher.server}/formgrader/manage_assignments")
    teacher.page.locator(f"td.name:has-text('{settings.ASSIGNMENT}')").wait_for()
    teacher.shot("instructor_1_formgrader")
    formgrader_action(teacher, "assign", "2_generated")
    formgrader_action(teacher, "release", "3_released")

    # Learner 1: fetch, put the solutions in, Validate, Submit.
    alice.log_in()
    alice.fetch()
    notebook_path = f"{settings.ASSIGNMENT}/{settings.NOTEBOOK}.ipynb"
    fetched = alice.api("GET", f"contents/{notebook_path}")["content"]
    fetched_text = json.dumps(fetched)
    assert not [m for m in HIDDEN_MARKERS if m in fetched_text], "the fetched notebook shows hidden tests or solutions"
    alice.api("PUT", f"contents/{notebook_path}", {"type": "notebook", "format": "json", "content": solved_notebook(fetched, None)})
    alice.page.goto(f"{alice.server}/lab/tree/{notebook_path}")
    validate = alice.page.locator(".jp-NotebookPanel-toolbar .validate-button")
    validate.click()
    report = alice.page.locator(".jp-Dialog-content")
    report.wait_for(timeout=ACTION_TIMEOUT_MS)
    alice.page.wait_for_function("() => !document.querySelector('.jp-Dialog-content').innerText.includes('Validating')", timeout=ACTION_TIMEOUT_MS)
    alice.shot(f"{LEARNER_1}_3_validated", report)
    assert "Success! Your notebook passes all the tests." in report.inner_text(), report.inner_text()[:2000]
    alice.page.locator(".jp-Dialog .jp-mod-accept").click()
    alice.submit()

    # Learner 2: fetch, solve SparseTensor only, Submit.
    bob.log_in()
    bob.fetch()
    fetched = bob.api("GET", f"contents/{notebook_path}")["content"]
    hostile = solved_notebook(fetched, {"sparse_tensor"})
    hostile["cells"].append(nbformat.v4.new_code_cell(HOSTILE_DISPLAY))
    teacher_home = Path(pwd.getpwnam(INSTRUCTOR).pw_dir)
    probed = [str(workshop.directory / "exchange"), str(workshop.directory / "exchange" / "latent-gradients" / "inbound"),
              str(Path(pwd.getpwnam(LEARNER_1).pw_dir)), str(Path(pwd.getpwnam(LEARNER_1).pw_dir) / notebook_path), str(teacher_home),
              str(teacher_home / "course" / "gradebook.db"), str(teacher_home / "course" / ".grading_secret"), "/proc/1/environ"]  # fmt: skip
    hostile["cells"].append(nbformat.v4.new_code_cell(PROBE.format(paths=probed)))
    bob.api("PUT", f"contents/{notebook_path}", {"type": "notebook", "format": "json", "content": hostile})
    bob.submit()

    # Learner 1 forges a later submission under learner 2's name, every exercise solved, and tries learner 2's own.
    inbound = workshop.directory / "exchange" / "latent-gradients" / "inbound"
    genuine = [folder for folder in inbound.iterdir() if folder.name.startswith(f"{LEARNER_2}+")]
    assert genuine and not any(folder.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH) for folder in genuine), genuine
    forged = inbound / f"{LEARNER_2}+{settings.ASSIGNMENT}+2099-01-01 00:00:00.000000 UTC+forged"
    alice_notebook = Path(pwd.getpwnam(LEARNER_1).pw_dir) / notebook_path
    forge = f"mkdir '{forged}' && cp '{alice_notebook}' '{forged}/' && echo '2099-01-01 00:00:00.000000 UTC' > '{forged}/timestamp.txt'"
    subprocess.run(["runuser", "-u", LEARNER_1, "--", "sh", "-c", forge], check=True)
    tamper = subprocess.run(["runuser", "-u", LEARNER_1, "--", "cp", str(alice_notebook), str(genuine[0])], capture_output=True, text=True)
    assert tamper.returncode != 0, f"{LEARNER_1} wrote into {LEARNER_2}'s submission"

    teacher_course = Path(pwd.getpwnam(INSTRUCTOR).pw_dir) / "course"
    # Learner 2 tries learner 1's files: through the hub...
    for url in (f"{alice.server}/lab", f"{alice.server}/api/contents/{notebook_path}", f"{alice.server}/files/{notebook_path}"):
        response = bob.page.goto(url)
        assert response.status in (403, 404), f"{LEARNER_2} opened {url}: {response.status}"
        assert "BEGIN SOLUTION" not in bob.page.content() and "def from_dense" not in bob.page.content()
    bob.shot(f"{LEARNER_2}_5_refused_by_hub")
    # ...and on disk, as the Linux account that learner 2's server and kernels run as.
    servers = subprocess.run(["ps", "-o", "user=", "-C", "jupyterhub-singleuser"], capture_output=True, text=True).stdout.split()
    assert {INSTRUCTOR, LEARNER_1, LEARNER_2} <= set(servers), f"servers do not run as their owners: {servers}"
    alice_home = Path(pwd.getpwnam(LEARNER_1).pw_dir)
    for private in (alice_home / notebook_path, teacher_course / "gradebook.db", ROOT / "grading" / "grader" / "verdict.py", workshop.directory / "passwords.csv"):
        assert refused_on_disk(LEARNER_2, private), f"{LEARNER_2} can read {private}"
    listing = subprocess.run(["runuser", "-u", LEARNER_2, "--", "ls", str(workshop.directory / "exchange" / "latent-gradients" / "inbound")], capture_output=True, text=True)
    assert listing.returncode != 0, f"{LEARNER_2} can list the exchange's inbound folder: {listing.stdout}"

    # The instructor collects, autogrades each submission, generates and releases the feedback.
    teacher.page.goto(f"{teacher.server}/formgrader/manage_assignments")
    teacher.page.locator(f"td.name:has-text('{settings.ASSIGNMENT}')").wait_for()
    formgrader_action(teacher, "collect", "4_collected")
    collected = teacher_course / "submitted" / LEARNER_2 / settings.ASSIGNMENT
    assert "2099" not in (collected / "timestamp.txt").read_text(), "collect took the forged submission"
    assert "HOSTILE-" in (collected / f"{settings.NOTEBOOK}.ipynb").read_text(), "collect took the forged submission"
    add_submissions(workshop, teacher_course)
    batch = BatchGrading.start(teacher_course, [LEARNER_1, LEARNER_2, *ADDED_SUBMISSIONS])
    teacher.page.goto(f"{teacher.server}/formgrader/manage_submissions/{settings.ASSIGNMENT}")
    grading_start = time.perf_counter()
    for student in (LEARNER_1, LEARNER_2, *ADDED_SUBMISSIONS):
        row = teacher.page.locator(f"tr:has-text('{student}')")
        row.locator("td.autograde a").click()
        modal = teacher.page.locator("#success-modal, #error-modal")
        modal.wait_for(timeout=ACTION_TIMEOUT_MS)
        assert teacher.page.locator("#success-modal").count() == 1, f"autograding {student} failed:\n{modal.inner_text()[:3000]}"
        teacher.page.locator("#success-modal button[data-dismiss='modal']").first.click()
        modal.wait_for(state="detached")
    grading_seconds = time.perf_counter() - grading_start
    # The button, the batch and (project_tests/test_nbgrader.py) nbgrader by hand: one gradebook's scores.
    button, batched = gradebook_scores(teacher_course, [LEARNER_1, LEARNER_2, *ADDED_SUBMISSIONS]), batch.scores()
    totals = {student: sum(cells.values()) for student, cells in button.items()}
    assert totals == {LEARNER_1: float(sum(POINTS.values())), LEARNER_2: float(POINTS["sparse_tensor"]), "ws-stub": 0.0, "ws-hooks": 0.0}, totals
    differ = {(student, cell): (score, batched[student].get(cell)) for student, cells in button.items() for cell, score in cells.items() if batched[student].get(cell) != score}
    assert button == batched, f"formgrader's Autograde and python -m grading autograde disagree (cell: button, batch): {differ}"
    log = workshop.log_path.read_text(errors="replace")
    assert "Grading kernels run as" not in log, f"the workshop's grading kernels lack the grading account or a limit:\n{workshop.log()}"
    # make workshop built the grader's kernel cache, readable by all: the instructor's kernels used it.
    assert "Kernels will build their own tokenizer" not in workshop.log_path.read_text(errors="replace"), workshop.log()
    cached = list(settings.KERNEL_CACHE.rglob("*"))
    assert any(path.name == "tokenizer.json" for path in cached) and all(path.stat().st_mode & stat.S_IROTH for path in cached), cached
    teacher.page.reload()
    teacher.page.locator("td.autograde").first.wait_for()
    teacher.shot("instructor_5_autograded")
    # The instructor opens learner 2's autograded notebook, with its script, in formgrader.
    with Gradebook(f"sqlite:///{teacher_course / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission_notebook(settings.NOTEBOOK, settings.ASSIGNMENT, LEARNER_2).id
    teacher.page.goto(f"{teacher.server}/formgrader/submissions/{submission}/")
    teacher.page.wait_for_load_state("load")
    displayed = [frame for frame in teacher.page.frames if "HOSTILE-DISPLAY" in frame.content()]
    teacher.shot("instructor_5_hostile_submission")
    assert displayed, "formgrader does not show the hostile cell's output"
    ran = {frame.url: frame.evaluate("() => typeof window.hostileScriptRan") for frame in teacher.page.frames}
    assert set(ran.values()) == {"undefined"}, f"a submission's script ran in formgrader: {ran}"
    teacher.page.goto(f"{teacher.server}/formgrader/manage_assignments")
    teacher.page.locator(f"td.name:has-text('{settings.ASSIGNMENT}')").wait_for()
    formgrader_action(teacher, "generate-feedback", "6_feedback_generated")
    formgrader_action(teacher, "release-feedback", "7_feedback_released")

    # Each learner fetches their own feedback.
    scores = {}
    for learner in (alice, bob):
        html = learner.fetch_feedback()
        assert not [m for m in HIDDEN_MARKERS if m in html], f"{learner.username}'s feedback shows hidden tests"
        assert "<math" in html, f"{learner.username}'s feedback has no MathML: its math would need MathJax from a CDN"
        scores[learner.username] = tuple(float(x) for x in SCORE.search(html).groups())
        if learner is bob:
            assert html.count("PROBE-NOTHING") == len(probed) and "PROBE-SAW" not in html, re.findall(r"PROBE-\w+ [^<\n]*", html)
            assert f"PROBE-ACCOUNT {GRADER_ACCOUNT}" in html and "PROBE-VARIABLES []" in html, re.findall(r"PROBE-\w+ [^<\n]*", html)
    total = float(sum(POINTS.values()))
    assert scores == {LEARNER_1: (total, total), LEARNER_2: (float(POINTS["sparse_tensor"]), total)}, scores
    outside = [url for url in outside if not url.startswith(FEEDBACK_MATHJAX)]
    assert not outside, f"pages tried to fetch from outside the hub: {outside[:10]}"
    figures.add("workshop", f"make workshop, 1 instructor + 2 learners in Chromium: release -> fetch -> validate -> submit -> collect -> "
                            f"autograde -> feedback in {time.perf_counter() - start:.0f} s (autograde of {len(button)} submissions {grading_seconds:.0f} s); "
                            f"scores {scores[LEARNER_1][0]:g}/{total:g} and {scores[LEARNER_2][0]:g}/{total:g}")  # fmt: skip


# The kernel code each learner runs in their own server: learner 1 passes exercise 1, learner 2 runs exercise 3
# with the error term never set (the wrong catalogue's mistake, course_fixtures/catalogue/learner.py).
PASS_EXERCISE_1 = "import tests, solutions\ntests.test_sparse_tensor(solutions.SparseTensor)"
ERROR_TERM_NOT_SET = """
import tests
from part_utils import load_world
from course_fixtures.catalogue import learner
world = load_world("toy")
try:
    tests.test_latent_to_latent_gradients(learner.latent_to_latent(error_term="none"), world.model, world.saes)
except tests.CheckFailed as failure:
    print("failed as expected:", failure.message[:80])
"""
BOARD_LATENCY_MS = 2000  # from the end of a check to the board showing it (the board's promise)
RUN_IN_KERNEL = """async ([server, code]) => {
  const xsrf = (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || "";
  const made = await fetch(`${server}/api/kernels`, {method: "POST", headers: {"X-XSRFToken": decodeURIComponent(xsrf)}, body: "{}"});
  const {id} = await made.json();
  const ws = new WebSocket(`${server.replace(/^http/, "ws")}/api/kernels/${id}/channels`);
  const msgId = crypto.randomUUID();
  const output = [];
  await new Promise((resolve) => ws.addEventListener("open", resolve));
  const done = new Promise((resolve) => ws.addEventListener("message", (m) => {
    const msg = JSON.parse(m.data);
    if (msg.parent_header.msg_id !== msgId) return;
    if (msg.msg_type === "stream") output.push(msg.content.text);
    if (msg.msg_type === "error") output.push(msg.content.ename + ": " + msg.content.evalue);
    if (msg.msg_type === "execute_reply") resolve(msg.content.status);
  }));
  ws.send(JSON.stringify({channel: "shell", header: {msg_id: msgId, msg_type: "execute_request", username: "", session: msgId, version: "5.3"},
    parent_header: {}, metadata: {}, content: {code, silent: false, store_history: false, user_expressions: {}, allow_stdin: false}}));
  const status = await done;
  ws.close();
  await fetch(`${server}/api/kernels/${id}`, {method: "DELETE", headers: {"X-XSRFToken": decodeURIComponent(xsrf)}});
  return {status, output: output.join("")};
}"""


def run_in_kernel(person: Person, code: str) -> str:
    """Run `code` in a new kernel of the person's own server (as a notebook cell would); its output."""
    result = person.page.evaluate(RUN_IN_KERNEL, [f"/user/{person.username}", code])
    assert result["status"] == "ok", f"{person.username}'s kernel: {result['output'][-3000:]}"
    return result["output"]


@pytest.mark.timeout(900)
def test_board_shows_the_class_live(workshop: Workshop, browser, figures) -> None:
    """The instructor's board shows learner 1's pass and learner 2's named mistake within 2 s of each check,
    the class panel counts the mistake; learner 2 may read neither the board nor learner 1's events."""
    outside: list[str] = []
    teacher, alice, bob = (Person(browser, workshop, name, outside) for name in (INSTRUCTOR, LEARNER_1, LEARNER_2))
    board_url = f"{workshop.base_url}/services/board/"
    try:
        teacher.log_in()
        teacher.page.goto(board_url)
        teacher.page.locator("#live.on").wait_for()
        teacher.page.locator(f"#grid tr[data-learner='{LEARNER_1}']").wait_for()
        teacher.shot("board_1_opened")

        alice.log_in()
        alice.page.goto(f"{alice.server}/lab?reset")
        run_in_kernel(alice, PASS_EXERCISE_1)
        passed = teacher.page.locator(f"#grid tr[data-learner='{LEARNER_1}'] td[data-status='passed']")
        start = time.perf_counter()
        passed.wait_for(timeout=BOARD_LATENCY_MS)
        pass_latency = time.perf_counter() - start

        bob.log_in()
        bob.page.goto(f"{bob.server}/lab?reset")
        assert "failed as expected" in run_in_kernel(bob, ERROR_TERM_NOT_SET)
        mistake = teacher.page.locator(f"#grid tr[data-learner='{LEARNER_2}'] td[data-status='failing'] .mistake", has_text="error term not set")
        start = time.perf_counter()
        mistake.wait_for(timeout=BOARD_LATENCY_MS)
        mistake_latency = time.perf_counter() - start
        counted = teacher.page.locator("#panel [data-exercise='latent_to_latent'] li[data-mistake='error_term_not_set']")
        assert counted.inner_text() == "1 learner: error term not set", counted.inner_text()
        # Stuck longest first: learner 2 is the only one failing.
        assert teacher.page.locator("#grid tbody tr").first.get_attribute("data-learner") == LEARNER_2
        teacher.shot("board_2_live")
        teacher.page.locator("#projector").click()
        teacher.shot("board_3_projector")

        for url in (board_url, f"{board_url}api/events?learner={LEARNER_1}", f"{board_url}api/state", f"{board_url}export/events.csv"):
            response = bob.page.goto(url)
            assert response.status == 403, f"{LEARNER_2} opened {url}: {response.status}"
        bob.shot("board_4_learner_refused")
        bob.page.goto(f"{board_url}me")
        bob.page.locator("#mine tbody tr.failing").wait_for()
        bob.shot("board_5_learner_own_progress")
        assert not outside, f"pages tried to fetch from outside the hub: {outside[:10]}"
    except Exception:
        for person in (teacher, alice, bob):
            person.shot(f"{person.username}_board_at_failure")
        print(workshop.log())  # the hub's and the board's own log: pytest shows it with the failure
        raise
    figures.add("workshop board", f"make workshop: after the learner's cell finished, the instructor's board showed the pass within "
                                  f"{pass_latency:.2f} s and the named mistake within {mistake_latency:.2f} s (limit {BOARD_LATENCY_MS / 1000:g} s)")  # fmt: skip
