"""Grade every submission in nbgrader/submitted/, N at a time, each in its own nbgrader process.

What nbgrader lacks, and only that: the grading itself (normalization, integrity scan, sandboxed
execution, notes) is nbgrader's own pipeline, configured in nbgrader/nbgrader_config.py, so grading a
submission here or with `nbgrader autograde` by hand gives the same scores. The runner adds:

1. N submissions at a time, one nbgrader process each, with the cores shared out (GRADING_THREADS):
   a submission that hangs, kills or exhausts its kernel costs only its own process;
2. a row for every submission: when nbgrader cannot grade one at all (it cannot read the notebook), the
   untouched release is graded in its place, with a note that says why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from grading.grader import settings
from grading.grader.hidden_params import read_secret
from grading.grader.sandbox import sandbox_problem


@dataclass
class Result:
    student: str
    seconds: float
    returncode: int
    fallback: bool = False
    flags: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


def course_paths(course: Path) -> dict[str, Path]:
    return {
        "release": course / "release" / settings.ASSIGNMENT / f"{settings.NOTEBOOK}.ipynb",
        "submitted": course / "submitted",
        "fallback": course / "fallback",
        "reports": course / "reports",
    }


def students(course: Path) -> list[str]:
    submitted = course_paths(course)["submitted"]
    return sorted(p.parent.name for p in submitted.glob(f"*/{settings.ASSIGNMENT}") if p.is_dir())


def _autograde(course: Path, student: str, env: dict[str, str], log: Path, submitted: str) -> int:
    command = [
        sys.executable, "-m", "nbgrader", "autograde", settings.ASSIGNMENT,
        "--student", student, "--force", f"--CourseDirectory.submitted_directory={submitted}",
    ]
    for attempt in range(3):
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"$ {' '.join(command)}\n")
            out.flush()
            try:
                code = subprocess.run(command, cwd=course, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=settings.SUBMISSION_TIMEOUT_S).returncode
            except subprocess.TimeoutExpired:
                out.write(f"\n[grading] gave up after {settings.SUBMISSION_TIMEOUT_S} s\n")
                return 124
        if code == 0 or "database is locked" not in log.read_text(encoding="utf-8", errors="replace"):
            return code
        time.sleep(1 + attempt)
    return code


def grade_one(course: Path, student: str, threads: int) -> Result:
    start = time.perf_counter()
    paths = course_paths(course)
    for folder in ("logs", "runs"):
        (paths["reports"] / folder).mkdir(parents=True, exist_ok=True)
    log = paths["reports"] / "logs" / f"{student}.log"
    log.write_text("", encoding="utf-8")
    # nbgrader runs this environment's own tools (alembic, for the gradebook) by name.
    env = dict(os.environ, GRADING_THREADS=str(threads), PATH=os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))))
    code = _autograde(course, student, env, log, "submitted")
    fallback = False
    notes: list[str] = []
    if code != 0:
        # nbgrader could not grade the notebook at all (it cannot even read it): grade the release in its
        # place, so that the student gets a row and a feedback that says why.
        fallback = True
        notes = [f"nbgrader could not read or run this notebook (exit status {code}); the untouched release was graded in its place, so every exercise scores 0. Ask your instructor."]
        staging = paths["fallback"] / student / settings.ASSIGNMENT
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(paths["submitted"] / student / settings.ASSIGNMENT, staging, ignore=shutil.ignore_patterns("*.ipynb"))
        shutil.copy(paths["release"], staging / f"{settings.NOTEBOOK}.ipynb")
        code = _autograde(course, student, env | {"GRADING_RUNNER_NOTE": notes[0]}, log, paths["fallback"].name)
    run = paths["reports"] / "runs" / f"{student}.json"
    report = json.loads(run.read_text(encoding="utf-8")) if run.exists() else {}
    result = Result(student, time.perf_counter() - start, code, fallback, report.get("flags", {}), report.get("notes", notes))
    (paths["reports"] / "runs" / f"{student}.result.json").write_text(json.dumps(asdict(result), indent=1), encoding="utf-8")
    return result


def autograde_all(course: Path, jobs: int = 1, only: list[str] | None = None) -> list[Result]:
    # Without the secret no hidden test can be chosen and nbgrader would fail every submission: say so once.
    read_secret(course)
    problem = sandbox_problem()
    if problem:
        print(f"WARNING: the grading sandbox cannot run ({problem}); nbgrader will refuse to grade unless GRADING_ALLOW_UNSANDBOXED=1.", flush=True)
    names = only or students(course)
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    print(f"Grading {len(names)} submission(s) with {jobs} worker(s), {threads} thread(s) per kernel, on the "
          f"{settings.GRADING_WORLD} world; limits: {settings.CELL_TIMEOUT_S} s per cell, {settings.MEMORY_LIMIT_GB:g} GiB per kernel; "
          f"sandbox: {'NONE' if problem else 'bubblewrap (active)'}.")
    start = time.perf_counter()
    results: list[Result] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for result in pool.map(lambda name: grade_one(course, name, threads), names):
            status = "ok" if result.returncode == 0 and not result.fallback else ("graded as release" if result.returncode == 0 else f"FAILED ({result.returncode})")
            extra = f"; integrity: {', '.join(result.flags)}" if result.flags else ""
            print(f"  {result.student}: {status} in {result.seconds:.1f} s{extra}", flush=True)
            results.append(result)
    total = time.perf_counter() - start
    print(f"Graded {len(results)} submission(s) in {total:.1f} s ({total / max(1, len(results)):.1f} s per submission).")
    return results
