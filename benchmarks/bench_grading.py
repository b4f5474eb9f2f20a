"""Grading throughput: seconds per submission and submissions per minute, at 1 and 2 parallel workers.

    python benchmarks/bench_grading.py                      # 4 copies of the reference solutions, toy world
    python benchmarks/bench_grading.py --n 6 --example partial --world random --workers 1 2 4

Each run releases the assignment into a fresh temporary course directory, submits `--n` copies of an
example submission (project_tests/grading_examples.py) and times `python -m grading autograde --jobs W` end to end
(the real nbgrader flow: one nbgrader process and one sandboxed kernel per submission), then generates
the feedback and reports the largest feedback file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grading.grader import settings
from project_tests import grading_examples as examples

ROOT = Path(__file__).resolve().parent.parent


def run(world: str, n: int, example: str, workers: int) -> tuple[float, int]:
    """(seconds to autograde, bytes of the largest feedback file)."""
    # nbgrader runs this environment's own tools (alembic) by name, whether or not the venv is activated.
    # The hidden tests need a secret; any fixed one will do for timing.
    env = dict(os.environ, GRADING_WORLD=world, GRADING_SECRET=os.environ.get("GRADING_SECRET", "bench"), PATH=os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))))
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp)
        shutil.copytree(ROOT / "nbgrader" / "source", course / "source")
        shutil.copy(ROOT / "nbgrader" / "nbgrader_config.py", course)
        for step in (["db", "assignment", "add", settings.ASSIGNMENT], ["generate_assignment", settings.ASSIGNMENT]):
            subprocess.run([sys.executable, "-m", "nbgrader", *step], cwd=course, env=env, check=True, capture_output=True)
        text, _ = examples.build(course)[example]
        examples.submit(course, {f"student{i:02d}": (text, {}) for i in range(n)})
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "grading", "autograde", "--course", str(course), "--jobs", str(workers)],
                       cwd=course, env=env, check=True, capture_output=True)
        seconds = time.perf_counter() - start
        subprocess.run([sys.executable, "-m", "grading", "feedback", "--course", str(course)], cwd=course, env=env, check=True, capture_output=True)
        return seconds, max(path.stat().st_size for path in course.glob("feedback/*/*/*.html"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world", default="toy")
    parser.add_argument("--n", type=int, default=4, help="submissions per run")
    parser.add_argument("--example", default="solutions", choices=("solutions", "partial", "release", "raises", "hostile_floods"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    print(f"{args.n} copies of '{args.example}' on the {args.world} world, {os.cpu_count()} CPU cores")
    base = None
    for workers in args.workers:
        seconds, feedback_bytes = run(args.world, args.n, args.example, workers)
        base = base or seconds
        print(f"workers {workers}: {seconds:.1f} s total, {seconds / args.n:.1f} s per submission, "
              f"{60 * args.n / seconds:.2f} submissions/min, speed-up {base / seconds:.2f}x; "
              f"largest feedback file {feedback_bytes / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
