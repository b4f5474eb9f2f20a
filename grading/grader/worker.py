"""One nbgrader process per batch worker: it grades, one after another, the submissions the runner sends.

grading/grader/runner.py starts one per job, `serve(course, channel)`, forked by multiprocessing's fork
server, which has imported nbgrader and the grader's modules (PRELOADED) once for all workers. Each
submission is graded by nbgrader's own Python API (`NbGraderAPI.autograde`, what formgrader's Autograde
button calls), with the course's nbgrader_config.py, so the pipeline is exactly that of `nbgrader
autograde --student ID`. Nothing that a submission runs lives in this process, only in its kernel.

Protocol, over a multiprocessing connection: a request ({"student", "submitted_directory"}), then its
answer ({"student", "returncode"}: 0 when nbgrader graded it); the runner closes the connection at the
end. While a submission is graded, this process's stdout and stderr (nbgrader's log, the kernel's own
output) go to its log file, reports/logs/<student>.log.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from grading.grader import settings

# nbgrader's error when two workers write the gradebook at once past its lock timeout: graded again.
DB_LOCKED = "database is locked"
# What every worker imports before it grades: nbgrader, and the grader's modules that nbgrader_config.py
# names, with the references (grading.grader.verdict: tests, solutions, part_utils, sae_lens).
PRELOADED = ["nbgrader.apps", "nbgrader.apps.nbgraderapp", "grading.grader.verdict", "grading.grader.execute", "grading.grader.outputs",
             "grading.grader.feedback", "grading.grader.integrity"]


@contextlib.contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """File descriptors 1 and 2 (this process's and the kernels' it starts) into `log` for a while."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "a", encoding="utf-8") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _api(course: Path) -> Any:
    # nbgrader is imported here, once per worker.
    from nbgrader.apps import NbGraderAPI
    from nbgrader.apps.nbgraderapp import NbGraderApp

    os.chdir(course)
    app = NbGraderApp()
    app.initialize([])  # reads the course's nbgrader_config.py, as `nbgrader autograde` does
    # This process grades one submission after another: each kernel is forked from one that has done the
    # kernels' imports, in the same sandbox (grading/grader/kernel_template.py).
    app.config.SandboxProvisioner.kernel_template = True
    return NbGraderAPI(parent=app)


def grade(api: Any, student: str, submitted_directory: str, log: Path) -> int:
    """`nbgrader autograde ASSIGNMENT --student STUDENT --force`, in this process; 0 when it graded it."""
    configured = api.coursedir.submitted_directory
    api.coursedir.submitted_directory = submitted_directory
    try:
        for attempt in range(3):
            with _output_to(log), open(log, "a", encoding="utf-8") as out:
                out.write(f"$ nbgrader autograde {settings.ASSIGNMENT} --student {student} --force "
                          f"--CourseDirectory.submitted_directory={submitted_directory}\n")
                out.flush()
                result = api.autograde(settings.ASSIGNMENT, student, force=True, create=True)
                text = (result.get("log") or "") + (result.get("error") or "")
                out.write(text)
            if result["success"] or DB_LOCKED not in text:
                return 0 if result["success"] else 1
            time.sleep(1 + attempt)
        return 1
    finally:
        api.coursedir.submitted_directory = configured


def serve(course: str, channel: Connection) -> None:
    """Grade each request from `channel` and answer on it, until the runner closes it."""
    from grading.grader import kernel_template

    os.setsid()  # a Ctrl+C in the runner's terminal reaches the runner, which stops its workers
    api = _api(Path(course).resolve())
    logs = Path(course) / "reports" / "logs"
    try:
        while True:
            try:
                request = channel.recv()
            except EOFError:
                return
            code = grade(api, request["student"], request["submitted_directory"], logs / f"{request['student']}.log")
            channel.send({"student": request["student"], "returncode": code})
    finally:
        kernel_template.close()  # a forked process runs no atexit handler
