"""Grade every submission in nbgrader/submitted/, N at a time, each in its own nbgrader process.

One process per submission isolates them: a submission that hangs, kills or exhausts its kernel costs
only its own process, and the batch goes on. Per submission the runner:

1. rebuilds the notebook from the release (`grading.normalize`) into nbgrader/normalized/<student>/;
2. scans the student's own code (`grading.integrity`);
3. runs `nbgrader autograde --student <student>` on it, with `grading.execute.RobustExecute` executing
   the notebook (see nbgrader/nbgrader_config.py) in the grading environment (`settings.kernel_env`);
4. if nbgrader still fails (e.g. a notebook it cannot handle), grades the untouched release in its
   place with a note, so that every submission gets a row in the grades and a feedback file.
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

import nbformat

from grading import settings
from grading.integrity import scan_cells
from grading.normalize import exercise_of_cells, normalize


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
        "normalized": course / "normalized",
        "reports": course / "reports",
    }


def students(course: Path) -> list[str]:
    submitted = course_paths(course)["submitted"]
    return sorted(p.parent.name for p in submitted.glob(f"*/{settings.ASSIGNMENT}") if p.is_dir())


def _autograde(course: Path, student: str, env: dict[str, str], log: Path) -> int:
    command = [
        sys.executable, "-m", "nbgrader", "autograde", settings.ASSIGNMENT,
        "--student", student, "--force",
        "--CourseDirectory.submitted_directory=normalized",
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
    release = nbformat.read(paths["release"], as_version=4)
    source_dir = paths["submitted"] / student / settings.ASSIGNMENT
    staging = paths["normalized"] / student / settings.ASSIGNMENT
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for item in source_dir.iterdir():
        if item.is_file() and item.suffix != ".ipynb":
            shutil.copy(item, staging / item.name)

    notebook, notes, own_code = normalize(source_dir / f"{settings.NOTEBOOK}.ipynb", release)
    locked = [c.source for c in release.cells if c.cell_type == "code" and not c.metadata.get("nbgrader", {}).get("solution")]
    flags = scan_cells(own_code, locked)
    nbformat.write(notebook, staging / f"{settings.NOTEBOOK}.ipynb")

    for sub in ("jobs", "runs", "logs"):
        (paths["reports"] / sub).mkdir(parents=True, exist_ok=True)
    job = paths["reports"] / "jobs" / f"{student}.json"
    log = paths["reports"] / "logs" / f"{student}.log"
    log.write_text("", encoding="utf-8")
    job_data = {"student": student, "flags": flags, "notes": notes, "exercise_of": exercise_of_cells(release),
                "report": str(paths["reports"] / "runs" / f"{student}.json")}
    job.write_text(json.dumps(job_data, indent=1), encoding="utf-8")
    env = settings.kernel_env(threads) | {"GRADING_JOB": str(job), "GRADING_INTEGRITY_FLAGS": json.dumps(flags)}

    code = _autograde(course, student, env, log)
    fallback = False
    if code != 0:
        fallback = True
        notes = notes + [f"The grader could not run this notebook (nbgrader exit status {code}); the untouched release was graded in its place, so every exercise scores 0. Ask your instructor."]
        job_data["notes"] = notes
        job.write_text(json.dumps(job_data, indent=1), encoding="utf-8")
        nbformat.write(release, staging / f"{settings.NOTEBOOK}.ipynb")
        code = _autograde(course, student, env, log)
    result = Result(student, time.perf_counter() - start, code, fallback, flags, notes)
    (paths["reports"] / "runs" / f"{student}.result.json").write_text(json.dumps(asdict(result), indent=1), encoding="utf-8")
    return result


def autograde_all(course: Path, jobs: int = 1, only: list[str] | None = None) -> list[Result]:
    names = only or students(course)
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    print(f"Grading {len(names)} submission(s) with {jobs} worker(s), {threads} thread(s) per kernel, on the "
          f"{settings.GRADING_WORLD} world; limits: {settings.CELL_TIMEOUT_S} s per cell, {settings.MEMORY_LIMIT_GB:g} GiB per kernel.")
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
