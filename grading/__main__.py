"""The instructor's one command: `python -m grading {release,autograde,feedback,grades,collect,secret}`.

The Makefile's grading targets call it; `python -m grading COMMAND --help` says what each takes. Every
command works on one nbgrader course directory (`--course`, default `nbgrader/`) and runs nbgrader's
own commands or API there; docs/instructor.md walks through the flow.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from grading.grader import settings

# How each LMS names the notebooks in its "download all submissions" zip, as a regular expression on a file's
# path for nbgrader's FileNameCollectorPlugin: the student id and the notebook's name (without `.ipynb`).
# Canvas: <lastfirst>_[LATE_]<user id>_<submission id>_<name>[-<n>].ipynb, the student id being the user id.
# Moodle: <Full Name>_<participant id>_assignsubmission_file_/<name>.ipynb.
LMS_FILE_NAMES = {
    "canvas": r".*/[^/_]+_(?:LATE_)?(?P<student_id>\d+)_\d+_(?P<file_id>[^/.]+?)(?:-\d+)?\.ipynb$",
    "moodle": r".*/[^/]+_(?P<student_id>\d+)_assignsubmission_file_/(?P<file_id>[^/]+)\.ipynb$",
}


def _nbgrader(course: Path, *arguments: str, env: dict[str, str] | None = None) -> int:
    """Run one nbgrader command in the course directory, with this environment's tools first on PATH
    (nbgrader runs `alembic` by name)."""
    env = dict(os.environ if env is None else env)
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    return subprocess.run([sys.executable, "-m", "nbgrader", *arguments], cwd=course, env=env).returncode


def release(course: Path) -> int:
    """The student version in release/ (no solutions, no hidden tests), and the hidden tests' secret."""
    for arguments in (("db", "assignment", "add", settings.ASSIGNMENT), ("generate_assignment", settings.ASSIGNMENT, "--force")):
        if returncode := _nbgrader(course, *arguments):
            return returncode
    return secret(course)


def autograde(course: Path, jobs: int, students: list[str] | None) -> int:
    from grading.grader.runner import autograde_all

    try:
        results = autograde_all(course, jobs, students)
    except RuntimeError as error:  # no secret: nothing could be graded
        print(error, file=sys.stderr)
        return 2
    return 0 if all(r.returncode == 0 for r in results) else 1


def feedback(course: Path) -> int:
    return _nbgrader(course, "generate_feedback", settings.ASSIGNMENT, "--force", env=settings.kernel_env())


def grades(course: Path) -> int:
    from grading.grader.summary import write_summary

    write_summary(course)
    return 0


def collect(course: Path, archive: Path, file_names: str) -> int:
    """File each notebook of an LMS's zip under submitted/<student id>/ with nbgrader's zip_collect."""
    if not archive.is_file():
        print(f"No zip file {archive}", file=sys.stderr)
        return 2
    downloaded = course / "downloaded" / settings.ASSIGNMENT / "archive"
    shutil.rmtree(downloaded, ignore_errors=True)
    downloaded.mkdir(parents=True)
    shutil.copy2(archive, downloaded)
    return _nbgrader(course, "zip_collect", settings.ASSIGNMENT, "--force", f"--FileNameCollectorPlugin.named_regexp={file_names}")


def secret(course: Path) -> int:
    from grading.grader.hidden_params import SECRET_FILE, read_secret

    read_secret(course, create=True)
    print(f"The hidden tests' secret: {course / SECRET_FILE} (or GRADING_SECRET); keep it to reproduce grades.")
    return 0


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(prog="python -m grading", description="The course's autograder, around nbgrader (docs/instructor.md).")
    course = argparse.ArgumentParser(add_help=False)
    course.add_argument("--course", type=Path, default=settings.COURSE, help="the nbgrader course directory (default: %(default)s)")
    commands = main_parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("release", parents=[course], help="generate the student version and the hidden tests' secret")
    grade = commands.add_parser("autograde", parents=[course], help="grade every submission in submitted/, N at a time")
    grade.add_argument("--jobs", "-j", type=int, default=1, help="submissions graded in parallel (default: 1)")
    grade.add_argument("--student", action="append", help="grade only this student (repeatable)")
    commands.add_parser("feedback", parents=[course], help="one HTML feedback file per student, hidden tests stripped")
    commands.add_parser("grades", parents=[course], help="grades.csv, scores.csv and the class summary in reports/")
    zip_collect = commands.add_parser("collect", parents=[course], help="file an LMS's zip of submissions under submitted/")
    zip_collect.add_argument("zip", type=Path, help="the LMS's zip of every submission")
    names = zip_collect.add_mutually_exclusive_group()
    names.add_argument("--lms", choices=sorted(LMS_FILE_NAMES), default="canvas", help="whose file names the zip holds (default: %(default)s)")
    names.add_argument("--file-names", metavar="REGEX", help="another LMS: a regular expression on each file's path, with (?P<student_id>...) and (?P<file_id>...)")
    commands.add_parser("secret", parents=[course], help="create the hidden tests' secret if it is missing, and say where it is")
    return main_parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    course = args.course.resolve()
    if args.command == "release":
        return release(course)
    if args.command == "autograde":
        return autograde(course, args.jobs, args.student)
    if args.command == "feedback":
        return feedback(course)
    if args.command == "grades":
        return grades(course)
    if args.command == "collect":
        return collect(course, args.zip.resolve(), args.file_names or LMS_FILE_NAMES[args.lms])
    return secret(course)


if __name__ == "__main__":
    sys.exit(main())
