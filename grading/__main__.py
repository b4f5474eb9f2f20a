"""`python -m grading autograde|feedback|grades|secret`; see grading/__init__.py."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from grading.grader import settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grading", description="The course's autograder around nbgrader.")
    parser.add_argument("command", choices=("autograde", "feedback", "grades", "secret"))
    parser.add_argument("--course", type=Path, default=settings.COURSE, help="the nbgrader course directory")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="submissions graded in parallel")
    parser.add_argument("--student", action="append", help="grade only this student (repeatable)")
    args = parser.parse_args(argv)
    course = args.course.resolve()
    if args.command == "autograde":
        from grading.grader.runner import autograde_all

        try:
            results = autograde_all(course, args.jobs, args.student)
        except RuntimeError as error:  # no secret: nothing could be graded
            print(error, file=sys.stderr)
            return 2
        return 0 if all(r.returncode == 0 for r in results) else 1
    if args.command == "secret":
        from grading.grader.hidden_params import SECRET_FILE, read_secret

        read_secret(course, create=True)
        print(f"The hidden tests' secret: {course / SECRET_FILE} (or GRADING_SECRET); keep it to reproduce grades.")
        return 0
    if args.command == "feedback":
        command = [sys.executable, "-m", "nbgrader", "generate_feedback", settings.ASSIGNMENT, "--force"]
        return subprocess.run(command, cwd=course, env=settings.kernel_env()).returncode
    from grading.grader.summary import write_summary

    write_summary(course)
    return 0


if __name__ == "__main__":
    sys.exit(main())
