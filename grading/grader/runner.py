"""Grade every submission in nbgrader/submitted/, N at a time, by N nbgrader processes.

What nbgrader lacks, and only that: the grading itself (normalization, integrity scan, sandboxed
execution, notes) is nbgrader's own pipeline, configured in nbgrader/nbgrader_config.py, so grading a
submission here or with `nbgrader autograde` by hand gives the same scores. The runner adds:

1. N submissions at a time, with the cores shared out (GRADING_THREADS): N worker processes
   (grading/grader/worker.py), each running nbgrader's own API for one submission after another, so
   that nbgrader's start-up is paid once per worker, not per submission, and its imports once in all
   (multiprocessing's fork server imports them, then forks each worker). Each submission still gets
   its own kernel process in its own sandbox; one that hangs past GRADING_SUBMISSION_TIMEOUT costs
   only its worker, which is replaced;
2. a row for every submission: when nbgrader cannot grade one at all (it cannot read the notebook), the
   untouched release is graded in its place, with a note that says why.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import nbformat

from grading import cell_metadata
from grading.grader import settings
from grading.grader.hidden_params import read_secret
from grading.grader.sandbox import limits_problem, remove_scratch_folders, sandbox_problem
from grading.grader.worker import PRELOADED, serve

# Workers are forked from a process that has done their imports (PRELOADED) once.
FORK_SERVER = multiprocessing.get_context("forkserver")
FORK_SERVER.set_forkserver_preload(PRELOADED)


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

    def __init__(self, course: Path):
        self.course = course
        self.process: multiprocessing.process.BaseProcess | None = None
        self.channel: Connection | None = None

    def _start(self) -> multiprocessing.process.BaseProcess:
        if self.process is None or not self.process.is_alive():
            self.channel, theirs = FORK_SERVER.Pipe()
            self.process = FORK_SERVER.Process(target=serve, args=(str(self.course), theirs), name="grading worker")
            self.process.start()
            theirs.close()
        return self.process

    def autograde(self, student: str, log: Path, submitted: str) -> int:
        self._start()
        assert self.channel is not None
        try:
            self.channel.send({"student": student, "submitted_directory": submitted})
            if not self.channel.poll(settings.SUBMISSION_TIMEOUT_S):
                return self._stop(log, f"gave up after {settings.SUBMISSION_TIMEOUT_S} s", 124)
            return int(self.channel.recv()["returncode"])
        except (OSError, EOFError):
            return self._stop(log, "the grading worker died while grading this submission")

    def _stop(self, log: Path, why: str, code: int | None = None) -> int:
        assert self.process is not None and self.channel is not None
        self.process.kill()
        self.process.join()
        remove_scratch_folders(self.process.pid)
        returncode = self.process.exitcode
        self.channel.close()
        self.process = self.channel = None
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"\n[grading] {why}\n")
        return code if code is not None else (returncode or 1)

    def close(self) -> None:
        if self.process is not None and self.channel is not None:
            self.channel.close()
            self.process.join(timeout=60)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
                remove_scratch_folders(self.process.pid)
            self.process = self.channel = None


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
    # The workers' environment is this process's, which the fork server starts with. nbgrader runs this
    # environment's own tools (alembic, for the gradebook) by name. A worker's own torch (the references on
    # hidden inputs) gets its share of the cores, as its kernels do.
    os.environ.update(GRADING_THREADS=str(threads), PATH=os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))),
                      **settings.thread_env(threads))
    idle: queue.SimpleQueue[Worker] = queue.SimpleQueue()
    workers = [Worker(course) for _ in range(max(1, jobs))]
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
