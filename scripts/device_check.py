"""`make device-check`: the course on an NVIDIA GPU, measured.

On a machine with CUDA this runs every learner check on CUDA passed the reference solutions (the small
world and the tiny random one); runs both catalogues (course_fixtures/catalogue) through the checks with
the learner's TF32 matmuls off and then on (every correct entry must pass, every wrong one fail),
measuring the largest difference between a correct formulation and the reference in each mode; derives
the GPU tolerance from it (10x, never below the CPU's 1e-3) beside the one tests/_report.py uses; and
runs the bench at GPT-2's shape on the GPU, then with TF32 matmuls, where nothing guards the precision.
Everything goes to one file, with the card's name. Without an NVIDIA GPU it says so and exits with
status 2, measuring nothing.

    python scripts/device_check.py [--output build/device_check.md] [--budget 480]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch

NO_GPU_STATUS = 2
# The CPU tolerance is 10x the largest rounding measured there (tests/_report.py): the same rule here.
TOLERANCE_MARGIN = 10
CPU_TOLERANCE = 1e-3
# The checks must still reject a Jacobian 1% off (project_tests/test_check_state.py).
LARGEST_USEFUL_TOLERANCE = 1e-2


def no_gpu_message() -> str | None:
    """Why this machine cannot run the device check, or None when it can."""
    if torch.cuda.is_available():
        return None
    built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    return (
        f"device-check: no NVIDIA GPU found (torch.cuda.is_available() is False; torch {torch.__version__}, {built}). "
        "Nothing was measured: CUDA stays unmeasured."
    )


class Report:
    """The figures, printed as they come and written to one file at the end."""

    def __init__(self, path: Path):
        self.path = path
        self.lines: list[str] = []

    def add(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("\n".join(self.lines) + "\n")


def learner_checks(report: Report, worlds: dict) -> bool:
    """Step 1: every learner check on CUDA, passed the reference solutions (the exercise table's rows)."""
    import tests as checks

    report.add("\n## Learner checks on CUDA, passed the reference solutions\n")
    report.add("| world | check | result | time |")
    report.add("|---|---|---|---:|")
    ok = True
    for label, world in worlds.items():
        for exercise in checks.EXERCISES:
            start = time.perf_counter()
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    exercise.run_check(exercise.reference, world)
                result = "passed"
            except checks.CheckFailed as failure:
                result, ok = f"FAILED: {failure.message}", False
            report.add(f"| {label} | {exercise.check.__name__} | {result} | {time.perf_counter() - start:.2f} s |")
    return ok


def catalogues(report: Report, build_world) -> tuple[bool, float]:
    """Step 2: the catalogues through the checks on CUDA, TF32 off then on. Returns (all right, largest error in either mode)."""
    from course_fixtures.catalogue import all_entries, outcome

    entries = all_entries()
    report.add("\n## Catalogues of learner solutions through the checks on CUDA\n")
    report.add("| TF32 matmuls | correct accepted | wrong rejected | largest relative difference, correct vs reference | worst entry |")
    report.add("|---|---:|---:|---:|---|")
    ok, largest_either = True, 0.0
    for tf32 in (False, True):
        torch.set_float32_matmul_precision("high" if tf32 else "highest")  # "high": TF32 on CUDA
        world = build_world()  # a fresh world per mode: the catalogue caches outcomes per world
        results = [(entry, outcome(entry, world)) for entry in entries if entry.applies_to(world)]
        correct = [(e, o) for e, o in results if e.correct]
        wrong = [(e, o) for e, o in results if not e.correct]
        accepted = sum(o.accepted for _, o in correct)
        rejected = sum(not o.accepted for _, o in wrong)
        errors = [(o.relative_error, e.id) for e, o in correct if o.relative_error is not None]
        largest, worst = max(errors, default=(0.0, "none"))
        ok &= accepted == len(correct) and rejected == len(wrong)
        report.add(f"| {'on' if tf32 else 'off'} | {accepted}/{len(correct)} | {rejected}/{len(wrong)} | {largest:.1e} | {worst} |")
        for entry, result in correct:
            if not result.accepted:
                report.add(f"  - correct entry rejected: {entry.id}: {result.message.strip().splitlines()[-1]}")
        for entry, result in wrong:
            if result.accepted:
                report.add(f"  - wrong entry accepted: {entry.id}")
        largest_either = max(largest_either, largest)
    torch.set_float32_matmul_precision("highest")
    return ok, largest_either


def tolerance(report: Report, largest: float) -> None:
    """Step 3: the GPU tolerance the measurement supports, beside the one in use."""
    from tests._report import tolerances

    in_use = tolerances(torch.device("cuda"))[1]
    derived = max(CPU_TOLERANCE, TOLERANCE_MARGIN * largest)
    report.add("\n## GPU tolerance\n")
    report.add(f"- largest relative difference between correct formulations on CUDA, TF32 on or off: {largest:.1e}")
    report.add(f"- derived tolerance ({TOLERANCE_MARGIN}x that, at least the CPU's {CPU_TOLERANCE:g}): {derived:.1e}")
    report.add(f"- in use (tests/_report.py tolerances, off the CPU): {in_use:.0e}")
    if derived > LARGEST_USEFUL_TOLERANCE:
        report.add(f"- WARNING: above {LARGEST_USEFUL_TOLERANCE:g}, where the checks could no longer tell a 1% mistake from rounding")
    elif derived > in_use:
        report.add("- ACTION: raise the tolerance off the CPU in tests/_report.py to the derived value")
    else:
        report.add("- the tolerance in use covers the measured rounding")


def bench(report: Report, seconds: float, precision: str = "highest") -> bool:
    """Step 4: `make bench` at GPT-2's shape on the GPU, within the time left."""
    report.add(f"\n## make bench at GPT-2's shape on CUDA, float32 matmul precision {precision}\n")
    bench_py = str(ROOT / "scripts" / "bench.py")
    command = [sys.executable, bench_py, "--worlds", "gpt2", "--device", "cuda", "--repeats", "3", "--matmul-precision", precision]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=max(seconds, 1), cwd=ROOT)
    except subprocess.TimeoutExpired as timeout:
        report.add(f"(timed out after {seconds:.0f} s; output so far below)\n")
        report.add((timeout.stdout or b"").decode() if isinstance(timeout.stdout, bytes) else timeout.stdout or "")
        return False
    report.add(done.stdout.rstrip())
    if done.returncode != 0:
        report.add(f"(bench exited with status {done.returncode}: {done.stderr.strip()[-2000:]})")
    return done.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / "build" / "device_check.md")
    parser.add_argument("--budget", type=float, default=480, help="seconds for the whole check (the bench gets what is left)")
    args = parser.parse_args()
    if (reason := no_gpu_message()) is not None:
        print(reason)
        return NO_GPU_STATUS
    start = time.perf_counter()

    from part_utils.random_world import TINY_SHAPE, build_random_world
    from scripts.bench_worlds import small_world

    def tiny_world():
        return build_random_world(TINY_SHAPE, seed=0, device="cuda")

    report = Report(args.output)
    properties = torch.cuda.get_device_properties(0)
    report.add(f"# Device check: {torch.cuda.get_device_name(0)}")
    report.add(
        f"\n{properties.total_memory / 1024**3:.0f} GiB, compute capability {properties.major}.{properties.minor}; "
        f"torch {torch.__version__}, CUDA {torch.version.cuda}; budget {args.budget:.0f} s"
    )
    small = small_world("cuda")
    checks_ok = learner_checks(report, {small.name: small, "tiny random": tiny_world()})
    catalogue_ok, largest = catalogues(report, tiny_world)
    tolerance(report, largest)
    bench_ok = bench(report, (args.budget - (time.perf_counter() - start)) * 2 / 3)
    # A measurement, not a verdict: with TF32 the bench's own comparison may reject what the guarded checks accept.
    bench(report, args.budget - (time.perf_counter() - start), precision="high")
    report.add(f"\nTotal: {time.perf_counter() - start:.0f} s.")
    report.write()
    print(f"\nFigures written to {args.output}")
    return 0 if checks_ok and catalogue_ok and bench_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
