"""Grading throughput: seconds per submission and submissions per minute, at 1 and 2 parallel workers.

    python scripts/bench_grading.py                      # 4 copies of the reference solutions, toy world
    python scripts/bench_grading.py --n 6 --example partial --world random --workers 1 2 4
    python scripts/bench_grading.py --n 8 --before main --ways trivial runner   # a git revision beside the tree

For each number of workers, `--ways` (all three by default) of grading `--n` submissions, each in a fresh
temporary course directory: `trivial`, stock nbgrader on a one-cell notebook, one process per
submission (the floor); `per-process`, the course with one `nbgrader autograde --student ID` process per
submission (as an instructor grades by hand); `make autograde`, through `python -m grading autograde
--jobs W`, with the largest feedback file's size, and with `--before REF` the same for the course at a
git revision, in the same run. Then a breakdown of one reference submission: nbgrader's start-up, the
hidden inputs' choice, the kernel's start, its cells by kind, and the grader's calls and verdicts; where
workers fork their kernels from a template, a worker's first kernel and a forked one, each to the end of
the first cell. The load average is printed with each figure: compare only figures of the same run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the example submissions (course_fixtures/) are not an installed package
# Parallel nbgrader processes share the gradebook: wait for its lock, as the course's configuration does.
TRIVIAL_CONFIG = 'get_config().CourseDirectory.db_url = "sqlite:///gradebook.db?timeout=120"\n'


def _env(world: str, root: Path = ROOT) -> dict[str, str]:
    # nbgrader runs this environment's own tools (alembic) by name, whether or not the venv is activated.
    # The hidden tests need a secret; any fixed one will do for timing. `root`: whose course code grades.
    return dict(os.environ, LATENT_GRADIENTS_WORLD=world, GRADING_SECRET=os.environ.get("GRADING_SECRET", "bench"), PYTHONPATH=str(root),
                PATH=os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))))


def _export(revision: str, tmp: Path) -> Path:
    """The repository at `revision`, as a plain folder (`git archive`), to grade with its code."""
    folder = tmp / f"at-{revision.replace('/', '-')}"
    folder.mkdir()
    archive = subprocess.run(["git", "archive", revision], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def _load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def _nbgrader(course: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, check=True, capture_output=True)


def _course(tmp: Path, env: dict[str, str], example: str, n: int, root: Path = ROOT) -> Path:
    """A released course with `n` copies of an example submission, from the course at `root`."""
    from course_fixtures import grading_examples as examples
    from grading.grader import settings

    course = tmp / ("course" if root == ROOT else f"course-{root.name}")
    shutil.copytree(root / "nbgrader" / "source", course / "source")
    shutil.copy(root / "nbgrader" / "nbgrader_config.py", course)
    _nbgrader(course, env, "db", "assignment", "add", settings.ASSIGNMENT)
    _nbgrader(course, env, "generate_assignment", settings.ASSIGNMENT)
    text, _ = examples.build(course)[example]
    examples.submit(course, {f"student{i:02d}": (text, {}) for i in range(n)})
    return course


def _trivial_course(tmp: Path, env: dict[str, str], n: int) -> Path:
    """nbgrader's stock pipeline on a notebook of one graded cell."""
    import nbformat

    course = tmp / "trivial"
    (course / "source" / "trivial").mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(TRIVIAL_CONFIG, encoding="utf-8")
    cell = nbformat.v4.new_code_cell("assert 1 + 1 == 2", metadata={"nbgrader": {"grade": True, "grade_id": "one", "locked": True, "points": 1, "solution": False, "schema_version": 3}})
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), course / "source" / "trivial" / "trivial.ipynb")
    _nbgrader(course, env, "db", "assignment", "add", "trivial")
    _nbgrader(course, env, "generate_assignment", "trivial")
    for i in range(n):
        folder = course / "submitted" / f"student{i:02d}" / "trivial"
        folder.mkdir(parents=True)
        shutil.copy(course / "release" / "trivial" / "trivial.ipynb", folder)
    return course


def _per_process(course: Path, env: dict[str, str], assignment: str, n: int, workers: int) -> float:
    """Seconds to grade every submission with one `nbgrader autograde` process each, `workers` at a time."""
    from grading.grader import settings

    threads = max(1, (os.cpu_count() or 1) // workers)  # as the runner shares the cores out
    env = env | {"GRADING_THREADS": str(threads), **settings.thread_env(threads)}
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda i: _nbgrader(course, env, "autograde", assignment, "--student", f"student{i:02d}", "--force"), range(n)))
    return time.perf_counter() - start


def _runner(course: Path, env: dict[str, str], workers: int) -> tuple[float, int]:
    """(seconds to grade every submission with `python -m grading autograde`, bytes of the largest feedback file)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "grading", "autograde", "--course", str(course), "--jobs", str(workers)],
                   cwd=course, env=env, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    subprocess.run([sys.executable, "-m", "grading", "feedback", "--course", str(course)], cwd=course, env=env, check=True, capture_output=True)
    return seconds, max(path.stat().st_size for path in course.glob("feedback/*/*/*.html"))


def throughput(world: str, n: int, example: str, workers: int, ways: list[str], before: Path | None) -> None:
    from grading.grader import settings

    env = _env(world)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if "trivial" in ways:
            trivial = _trivial_course(Path(tmp), env, n)
            rows.append(("trivial", _per_process(trivial, env, "trivial", n, workers), _load()))
        course = _course(Path(tmp), env, example, n)
        if "per-process" in ways:
            rows.append(("per-process", _per_process(course, env, settings.ASSIGNMENT, n, workers), _load()))
            for cache in course.glob("reports/hidden-params-*"):  # each way pays for choosing the hidden tests once
                cache.unlink()
        if "runner" in ways:
            for root, name in ([(before, f"make autograde ({before.name.removeprefix('at-')})")] if before else []) + [(ROOT, "make autograde")]:
                graded = course if root == ROOT else _course(Path(tmp), _env(world, root), example, n, root)
                seconds, feedback_bytes = _runner(graded, _env(world, root), workers)
                rows.append((name, seconds, f"{_load()}; largest feedback file {feedback_bytes / 1e6:.1f} MB"))
    for name, seconds, note in rows:
        print(f"  workers {workers}  {name:22s} {seconds / n:6.1f} s per submission  {60 * n / seconds:5.2f} per minute  ({note})", flush=True)


DEMONSTRATIONS = "demonstrations and plots (not run when grading)"


def _kind(cell: dict, first: bool) -> str:
    from grading import cell_metadata
    from grading.grader.demonstrations import is_marked

    if first:
        return "first cell: imports and world"
    if cell_metadata.is_solution(cell):
        return "learner's definitions"
    if cell_metadata.is_graded(cell) or cell["source"].startswith("tests."):
        return "learner checks (visible)"
    return DEMONSTRATIONS if is_marked(cell) else "other set-up cells"


def _forked(first_cell: Any, extra_arguments: list[str], hidden_paths: list[str]) -> dict[str, float]:
    """In a batch worker: the kernel template's start with the first kernel, then a kernel forked from it, each to
    the end of the notebook's first cell."""
    import nbformat
    from nbclient import NotebookClient

    from grading.grader import kernel_template, sandbox

    parts = {}
    for label in ("worker's first kernel: the kernel template's start, the kernel's, its first cell",
                  "any other kernel, forked from the template: its start and first cell"):
        client = NotebookClient(nbformat.v4.new_notebook(cells=[first_cell]), kernel_name="python3", timeout=600,
                                kernel_manager_class=sandbox.SandboxedKernelManager, extra_arguments=extra_arguments)
        client.config.SandboxProvisioner.hidden_paths = hidden_paths
        client.config.SandboxProvisioner.kernel_template = True
        start = time.perf_counter()
        with client.setup_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
            client.execute_cell(client.nb.cells[0], 0)
            parts[label] = time.perf_counter() - start
    kernel_template.close()
    return parts


def breakdown(world: str) -> None:
    """Where one reference submission's time goes, each part timed on its own."""
    import nbformat
    from nbclient import NotebookClient
    from traitlets.config.loader import PyFileConfigLoader

    from grading import cell_metadata
    from grading.grader import hidden_params, sandbox, settings, verdict
    from grading.grader.kernel_cache import ShareKernelCache

    env = _env(world)
    with tempfile.TemporaryDirectory() as tmp:
        course = _course(Path(tmp), env, "solutions", 1)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "from nbgrader.apps.nbgraderapp import NbGraderApp; NbGraderApp().initialize([])"],
                       cwd=course, env=env, check=True, capture_output=True)
        parts = {"nbgrader start-up (imports, configuration)": time.perf_counter() - start}
        os.environ.update({k: v for k, v in env.items() if k.startswith("GRADING_")})
        choice = "hidden inputs' choice (per student)"

        def chosen() -> dict:  # chosen inside the grader's calls, whose reference results it shares, as in grading
            start = time.perf_counter()
            params = hidden_params.params_for(course, "solutions")
            parts[choice] = time.perf_counter() - start
            return params

        start = time.perf_counter()
        ShareKernelCache().preprocess(nbformat.v4.new_notebook(), {})  # the kernels' tokenizer folder, as grading has it
        parts["kernels' cache (once per machine)"] = time.perf_counter() - start
        # The notebook as nbgrader runs it: the reference solutions and every cell but the graded ones, which
        # the grader scores by its own calls (grading/grader/verdict.py), timed after the cells.
        source = nbformat.read(course / "source" / settings.ASSIGNMENT / f"{settings.NOTEBOOK}.ipynb", as_version=4)
        code = [c for c in source.cells if c.cell_type == "code"]
        graded = nbformat.v4.new_notebook(cells=[c for c in code if cell_metadata.is_graded(c)])
        cells = [nbformat.v4.new_code_cell(c.source) for c in code if c not in graded.cells]
        kinds = [_kind(c, index == 0) for index, c in enumerate(c for c in code if c not in graded.cells)]
        config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
        client = NotebookClient(nbformat.v4.new_notebook(cells=cells), kernel_name="python3", timeout=600,
                                kernel_manager_class=sandbox.SandboxedKernelManager, extra_arguments=list(config.Execute.extra_arguments))
        client.config.SandboxProvisioner.hidden_paths = list(config.SandboxProvisioner.hidden_paths)
        start = time.perf_counter()
        with client.setup_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):  # the kernel's banner
            client.wait_for_reply(client.kc.kernel_info())
            parts["kernel start (sandbox, Python, grading set-up's imports)"] = time.perf_counter() - start
            for index, (cell, kind) in enumerate(zip(client.nb.cells, kinds, strict=True)):
                if kind == DEMONSTRATIONS:  # as grading/grader/demonstrations.py leaves them out
                    parts[kind] = 0.0
                    continue
                start = time.perf_counter()
                client.execute_cell(cell, index)
                parts[kind] = parts.get(kind, 0.0) + time.perf_counter() - start

            def execute(line: str) -> bool:
                reply = client.wait_for_reply(client.kc.execute(line, silent=True, store_history=False))
                return reply is not None and reply["content"].get("status") == "ok"

            start = time.perf_counter()
            verdict.grade_cells(graded, chosen, verdict.KernelChannel(Path(client.km.provisioner.scratch), execute))
            parts["the grader's calls and verdicts (hidden inputs)"] = time.perf_counter() - start - parts[choice]
        if sandbox.is_root() and sandbox.limits_problem() is None:  # where workers fork their kernels from a template
            parts.update(_forked(cells[0], list(config.Execute.extra_arguments), list(config.SandboxProvisioner.hidden_paths)))
    print(f"Breakdown of one reference submission ({world} world, {settings.kernel_threads()} thread(s), {_load()}):")
    for name, seconds in parts.items():
        print(f"  {seconds:6.1f} s  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world", default="toy")
    parser.add_argument("--n", type=int, default=4, help="submissions per run")
    parser.add_argument("--example", default="solutions", choices=("solutions", "partial", "release", "raises", "hostile_floods"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--ways", nargs="+", default=["trivial", "per-process", "runner"], choices=("trivial", "per-process", "runner"))
    parser.add_argument("--before", metavar="REF", help="also grade with the course at this git revision (e.g. main), in the same run")
    args = parser.parse_args()
    os.environ["LATENT_GRADIENTS_WORLD"] = args.world  # read by grading.grader.settings when first imported
    print(f"{args.n} copies of '{args.example}' on the {args.world} world, {os.cpu_count()} CPU cores, {_load()} at the start")
    with tempfile.TemporaryDirectory() as tmp:
        before = _export(args.before, Path(tmp)) if args.before else None
        for workers in args.workers:
            throughput(args.world, args.n, args.example, workers, args.ways, before)
    os.environ["GRADING_THREADS"] = str(max(1, (os.cpu_count() or 1) // max(args.workers)))
    breakdown(args.world)


if __name__ == "__main__":
    main()
