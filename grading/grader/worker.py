"""One nbgrader process per batch worker: it grades, one after another, the submissions the runner sends.

    python -m grading.grader.worker COURSE      # started by grading/grader/runner.py, one per job

Starting the `nbgrader` command costs about 5 s (its imports, the configuration, the gradebook); the
batch runner pays it once per worker instead of once per submission. Each submission is graded by
nbgrader's own Python API (`NbGraderAPI.autograde`, what formgrader's Autograde button calls), with the
configuration `nbgrader autograde` reads (the course's nbgrader_config.py), so the pipeline, and each
submission's own sandboxed kernel, are exactly those of `nbgrader autograde --student ID`. Nothing that
a submission runs lives in this process: its code runs only in its kernel.

Protocol: one JSON request per line on stdin ({"student", "submitted_directory"}), one JSON
answer per line on the answer channel ({"student", "returncode"}: 0 when nbgrader graded it). While a
submission is graded, this process's stdout and stderr (nbgrader's log, the kernel's own output) go to
its log file, reports/logs/<student>.log, as they did with one `nbgrader autograde` per submission.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from grading.grader import settings

# nbgrader's error when two workers write the gradebook at once past its lock timeout: graded again.
DB_LOCKED = "database is locked"


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


def main(argv: list[str]) -> int:
    course = Path(argv[0]).resolve()
    # Answers go out on a copy of stdout: fd 1 itself is the current submission's log while it is graded.
    answers = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    api = _api(course)
    logs = course / "reports" / "logs"
    for line in sys.stdin:
        request = json.loads(line)
        code = grade(api, request["student"], request["submitted_directory"], logs / f"{request['student']}.log")
        answers.write(json.dumps({"student": request["student"], "returncode": code}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
