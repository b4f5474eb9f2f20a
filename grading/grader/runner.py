"""Grade every submission in nbgrader/submitted/, N at a time, by N nbgrader processes.

What nbgrader lacks, and only that: the grading itself (normalization, integrity scan, sandboxed
execution, notes) is nbgrader's own pipeline, configured in nbgrader/nbgrader_config.py, so grading a
submission here or with `nbgrader autograde` by hand gives the same scores. The runner adds:

1. N submissions at a time, with the cores shared out (GRADING_THREADS): N worker processes
   (grading/grader/worker.py), each running nbgrader's own API for one submission after another, so
   that nbgrader's start-up is paid once per worker, not per submission. Each submission still gets
   its own kernel process in its own sandbox; one that hangs past GRADING_SUBMISSION_TIMEOUT costs
   only its worker, which is replaced;
2. a row for every submission: when nbgrader cannot grade one at all (it cannot read the notebook), the
   untouched release is graded in its place, with a note that says why.
"""

from __future__ import annotations

import json
import os
import queue
import select
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from grading import cell_metadata
from grading.grader import settings
from grading.grader.hidden_params import read_secret
from grading.grader.sandbox import limits_problem, remove_scratch_folders, sandbox_problem


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
        "fallback": course / settings.FALLBACK_FOLDER,
        "reports": course / "reports",
    }


def students(course: Path) -> list[str]:
    submitted = course_paths(course)["submitted"]
    return sorted(p.parent.name for p in submitted.glob(f"*/{settings.ASSIGNMENT}") if p.is_dir())


class Worker:
    """One nbgrader process (grading/grader/worker.py) that grades this thread's submissions one after another.

    A submission that takes longer than GRADING_SUBMISSION_TIMEOUT costs its worker: the process is killed
    (its kernel, started by bwrap with --die-with-parent, and every process in the kernel's PID namespace
    with it), its kernel's scratch folder removed, and the next submission gets a fresh one.
    """

    def __init__(self, course: Path, env: dict[str, str]):
        self.course, self.env = course, env
        self.process: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen([sys.executable, "-m", "grading.grader.worker", str(self.course)], cwd=self.course, env=self.env,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
        return self.process

    def autograde(self, student: str, log: Path, submitted: str) -> int:
        process = self._start()
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(json.dumps({"student": student, "submitted_directory": submitted}) + "\n")
            process.stdin.flush()
        except OSError:
            return self._stop(log, "the grading worker died before this submission")
        ready, _, _ = select.select([process.stdout], [], [], settings.SUBMISSION_TIMEOUT_S)
        answer = process.stdout.readline() if ready else ""
        if not ready:
            return self._stop(log, f"gave up after {settings.SUBMISSION_TIMEOUT_S} s", 124)
        if not answer:
            return self._stop(log, "the grading worker died while grading this submission")
        return int(json.loads(answer)["returncode"])

    def _stop(self, log: Path, why: str, code: int | None = None) -> int:
        assert self.process is not None
        self.process.kill()
        returncode = self.process.wait()
        remove_scratch_folders(self.process.pid)
        self.process = None
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"\n[grading] {why}\n")
        return code if code is not None else (returncode or 1)

    def close(self) -> None:
        if self.process is not None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                remove_scratch_folders(self.process.pid)
            self.process = None


def grade_one(course: Path, student: str, worker: Worker) -> Result:
    start = time.perf_counter()
    paths = course_paths(course)
    for folder in ("logs", "runs"):
        (paths["reports"] / folder).mkdir(parents=True, exist_ok=True)
    log = paths["reports"] / "logs" / f"{student}.log"
    log.write_text("", encoding="utf-8")
    code = worker.autograde(student, log, "submitted")
    fallback = code != 0
    if fallback:
        # nbgrader could not grade the notebook at all (it cannot even read it): grade the release in its
        # place, with a note for the grading record, so that the student gets a row and a feedback that says why.
        note = f"nbgrader could not read or run this notebook (exit status {code}); the untouched release was graded in its place, so every exercise scores 0. Ask your instructor."
        staging = paths["fallback"] / student / settings.ASSIGNMENT
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(paths["submitted"] / student / settings.ASSIGNMENT, staging, ignore=shutil.ignore_patterns("*.ipynb"))
        release = nbformat.read(paths["release"], as_version=4)
        cell_metadata.grading_job(release, create=True)[cell_metadata.RUNNER_NOTE] = note
        nbformat.write(release, staging / f"{settings.NOTEBOOK}.ipynb")
        code = worker.autograde(student, log, paths["fallback"].name)
    run = paths["reports"] / "runs" / f"{student}.json"
    report = json.loads(run.read_text(encoding="utf-8")) if run.exists() else {}
    return Result(student, time.perf_counter() - start, code, fallback, report.get("flags", {}), report.get("notes", []))


def autograde_all(course: Path, jobs: int = 1, only: list[str] | None = None) -> list[Result]:
    # Without the secret no hidden test can be chosen and nbgrader would fail every submission: say so once.
    read_secret(course)
    problem = sandbox_problem()
    gaps = None if problem else limits_problem()
    if gaps:
        print(f"WARNING: on this host the grading kernels run WITHOUT these limits: {gaps}.", flush=True)
    if problem:
        print(f"WARNING: the grading sandbox cannot run ({problem}); nbgrader will refuse to grade unless GRADING_ALLOW_UNSANDBOXED=1.", flush=True)
    names = only or students(course)
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    print(f"Grading {len(names)} submission(s) with {jobs} worker(s), {threads} thread(s) per kernel, on the "
          f"{settings.GRADING_WORLD} world; limits: {settings.CELL_TIMEOUT_S} s per cell, {settings.MEMORY_LIMIT_GB:g} GiB per kernel; "
          f"sandbox: {'NONE' if problem else 'bubblewrap (active)'}.")
    start = time.perf_counter()
    results: list[Result] = []
    # nbgrader runs this environment's own tools (alembic, for the gradebook) by name.
    env = dict(os.environ, GRADING_THREADS=str(threads), PATH=os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))))
    idle: queue.SimpleQueue[Worker] = queue.SimpleQueue()
    workers = [Worker(course, env) for _ in range(max(1, jobs))]
    for worker in workers:
        idle.put(worker)

    def grade(name: str) -> Result:
        worker = idle.get()
        try:
            return grade_one(course, name, worker)
        finally:
            idle.put(worker)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for result in pool.map(grade, names):
            status = "ok" if result.returncode == 0 and not result.fallback else ("graded as release" if result.returncode == 0 else f"FAILED ({result.returncode})")
            extra = f"; integrity: {', '.join(result.flags)}" if result.flags else ""
            print(f"  {result.student}: {status} in {result.seconds:.1f} s{extra}", flush=True)
            results.append(result)
    for worker in workers:
        worker.close()
    total = time.perf_counter() - start
    print(f"Graded {len(results)} submission(s) in {total:.1f} s ({total / max(1, len(results)):.1f} s per submission).")
    return results
