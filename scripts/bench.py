"""`make bench`: the reference solutions against the straightforward formulation, side by side.

For each gradient computation, on the small world (the toy world, else the tiny random one) and on a
GPT-2-shaped world of random weights, this runs the straightforward implementation
(`solutions/straightforward.py`) and the reference (`solutions`) alternately in one process, and prints
the median wall time, the extra peak memory, their ratios, whether both gave the same results (by the
learner checks' own comparisons), and each reference's lower bound (scripts/flops.py at the matmul
speed measured just before each timed call). Then every learner check's time on the small world, the
SparseTensor check outside a hub and reporting to a workshop board (tests/_board.py), the SAE weights
the GPT-2-shaped world loaded, and the time from a fresh process to the first passing checks
(scripts/first_check.py). docs/performance.md describes each measure.

    python scripts/bench.py [--worlds small,gpt2] [--repeats 3] [--threads N] [--device cpu] [--matmul-precision highest|high] [--no-first-check] [--output FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import functools
import gc
import io
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch

from part_utils.hooks import _get_hook_layer
from part_utils.worlds import World
from scripts import flops as useful_flops
from scripts.bench_worlds import gpt2_shaped_world, latents_per_token, small_world
from scripts.flops import matmul_gflops
from tests._compare import LatentJacobian, aligned_jacobians
from tests._report import CheckFailed
from tests.exercises import BY_NAME, EXERCISES, Exercise
from tests.latent_to_latent import compare_latent_to_latent
from tests.latent_to_logit import compare_latent_to_logit
from tests.token_to_latent import compare_token_to_latent

MIB = 1024**2


# ----------------------------------------------------------------------------------------------- memory
def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


class PeakMemory:
    """Extra peak memory of a block, in bytes (None where this system cannot tell)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.linux = os.path.exists("/proc/self/clear_refs")
        self._libc = ctypes.CDLL("libc.so.6") if self.linux else None

    def method(self) -> str:
        if self.device.type == "cuda":
            return "CUDA: torch.cuda.max_memory_allocated above the memory allocated before the call"
        if self.linux:
            return "CPU: rise of the process's peak resident set (VmHWM, reset before the call) above its resident set before it"
        return "not measured on this system"

    @contextlib.contextmanager
    def measure(self, result: dict[str, int | None]):
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            yield
            torch.cuda.synchronize()
            result["bytes"] = torch.cuda.max_memory_allocated() - before
        elif self.linux:
            self._libc.malloc_trim(0)  # hand freed heap back, so that the baseline is what is in use
            with open("/proc/self/clear_refs", "w") as clear:
                clear.write("5")  # resets VmHWM to the current resident set
            before = _status_kib("VmRSS")
            yield
            result["bytes"] = max(0, _status_kib("VmHWM") - before) * 1024
        else:
            yield
            result["bytes"] = None


# ------------------------------------------------------------------------------------------- the cases
@dataclass
class Case:
    # The exercise table's row: its straightforward formulation and its reference are what is timed.
    exercise: Exercise
    # Layers and k, for the table's first column.
    detail: str
    # The exercise's arguments, tokens first.
    args: tuple[Any, ...]
    # The learner check's own comparison of (the straightforward results, as a learner's; the reference's).
    compare: Callable[[tuple, tuple], Any]
    # The call's useful FLOPs (the Jacobian's and the primal passes'), counted from the reference's results (scripts/flops.py).
    flops: Callable[[tuple], float]
    # The results' Jacobian with the SparseTensors that label its rows and columns, as the check compares it.
    jacobian: Callable[[tuple], LatentJacobian]

    @property
    def name(self) -> str:
        return f"{self.exercise.name} ({self.detail})"

    @property
    def size(self) -> str:
        return f"{self.args[0].shape[-1]} tokens"


def _latent_pair_case(world: World, name: str, tokens: torch.Tensor, saes: dict, layer_from: int, layer_to: int) -> Case:
    """A Case for an exercise between two SAEs' latents (latent to latent, attention)."""
    model = world.model
    return Case(
        BY_NAME[name],
        f"L{layer_from}->L{layer_to}",
        (tokens, saes[layer_from], saes[layer_to], model),
        lambda got, want: compare_latent_to_latent(name, got, want),
        lambda result: useful_flops.latent_to_latent(model, result, layer_from, layer_to, attention=name == "attention"),
        lambda result: LatentJacobian(result[0], result[3], result[1]),
    )


def cases(world: World, token_sae: Any = None) -> list[Case]:
    model, ex = world.model, world.exercises
    l2l = ex.latent_to_latent
    t2l_tokens, t2l_sae = model.to_tokens(ex.token_to_latent.prompt), token_sae if token_sae is not None else world.saes[ex.token_to_latent.layer]
    l2g = ex.latent_to_logit
    l2g_tokens, l2g_sae = model.to_tokens(l2g.prompt), world.saes[l2g.layer]
    ind = ex.attention
    return [
        _latent_pair_case(world, "latent_to_latent", model.to_tokens(l2l.prompt), world.saes, l2l.layer_from, l2l.layer_to),
        Case(
            BY_NAME["token_to_latent"],
            f"L{ex.token_to_latent.layer}",
            (t2l_tokens, t2l_sae, model),
            lambda got, want: compare_token_to_latent(got, want, t2l_tokens, t2l_sae, model),
            lambda result: useful_flops.token_to_latent(model, result, _get_hook_layer(t2l_sae)),
            lambda result: LatentJacobian(result[0], None, result[1]),
        ),
        Case(
            BY_NAME["latent_to_logit"],
            f"L{l2g.layer}, k={l2g.k}",
            (l2g_tokens, l2g_sae, model, l2g.k),
            lambda got, want: compare_latent_to_logit(got, want, l2g.k, l2g_tokens, l2g_sae, model),
            lambda result: useful_flops.latent_to_logit(model, result, l2g.layer),
            lambda result: LatentJacobian(result[0], None, result[4]),
        ),
        _latent_pair_case(world, "attention", ind.repeated_tokens(model), world.attn_saes, ind.layer_from, ind.layer_to),
    ]


def _jacobian_shape(result: Any) -> str:
    return "x".join(str(n) for n in result[0].shape)


def same_results(case: Case, got: tuple, want: tuple) -> str:
    """The learner check's verdict on the straightforward results (as a learner's) against the reference's,
    and the Jacobians' largest difference relative to their largest entry, on the latents active in
    both (as the check compares them: a latent a rounding error from zero may be active in one only)."""
    try:
        case.compare(got, want)
    except CheckFailed as failure:
        return "NO: " + failure.message
    got_labelled, want_labelled = case.jacobian(got), case.jacobian(want)
    note, got_jacobian, want_jacobian = "", got_labelled.values, want_labelled.values
    if got_jacobian.shape != want_jacobian.shape:
        odd = sum(
            len({tuple(i) for i in mine.sparse[1].tolist()} ^ {tuple(i) for i in theirs.sparse[1].tolist()})
            for mine, theirs in ((got_labelled.rows, want_labelled.rows), (got_labelled.cols, want_labelled.cols))
            if mine is not None
        )
        note = f"{odd} latent(s) of rounding-error activation active in one only; "
        got_jacobian, want_jacobian = aligned_jacobians(case.name, "Jacobian", got_labelled, want_labelled)
    scale = float(want_jacobian.detach().abs().max()) if want_jacobian.numel() else 0.0
    difference = float((got_jacobian - want_jacobian).detach().abs().max()) / scale if scale > 0 else 0.0
    return f"yes ({note}max rel. diff {difference:.0e})"


@dataclass
class Row:
    world: str
    case: Case
    times: dict[str, list[float]]
    peaks: dict[str, int | None]
    same: str
    jacobian: str
    flops: float  # useful FLOPs of the Jacobian and the primal passes
    gflops_per_s: float  # single-thread matmul speed, median of those measured before each timed reference call

    def bound(self) -> float:
        """The lower bound on the reference's time: its useful FLOPs at the measured matmul speed."""
        return self.flops / (self.gflops_per_s * 1e9)

    def time(self, impl: str) -> float:
        return statistics.median(self.times[impl])

    def peak(self, impl: str) -> int | None:
        return self.peaks[impl]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()  # CUDA runs kernels asynchronously: a call ends when its kernels do


def run_case(world_name: str, case: Case, repeats: int, memory: PeakMemory) -> Row:
    # The matmul speed is measured just before each timed reference call, and its median taken like
    # the reference's time's: on a shared machine both then see the same load.
    speeds: list[float] = []
    impls = {"straightforward": case.exercise.straightforward, "reference": case.exercise.reference}
    times: dict[str, list[float]] = {name: [] for name in impls}
    peaks: dict[str, int | None] = {}
    results: dict[str, Any] = {}
    with torch.enable_grad():
        for name, fn in impls.items():  # warm-up, and the results compared below
            results[name] = fn(*case.args)
        with contextlib.redirect_stdout(io.StringIO()):  # the checks' notes on learner warnings
            same = same_results(case, results["straightforward"], results["reference"])
        jacobian = _jacobian_shape(results["reference"])
        flops = case.flops(results["reference"])
        results.clear()
        for name, fn in impls.items():  # peak memory, in calls of their own (see the module's docstring)
            measured: dict[str, int | None] = {}
            with memory.measure(measured):
                result = fn(*case.args)
                _synchronize(memory.device)
            peaks[name] = measured["bytes"]
            del result
        for repeat in range(repeats):
            # Alternate the order, so that neither always runs first after the other's allocations.
            order = list(impls) if repeat % 2 == 0 else list(impls)[::-1]
            for name in order:
                if name == "reference":
                    speeds.append(matmul_gflops(memory.device))
                gc.collect()  # the other's garbage, not collected inside the timed call
                _synchronize(memory.device)
                start = time.perf_counter()
                result = impls[name](*case.args)
                _synchronize(memory.device)
                times[name].append(time.perf_counter() - start)
                del result
    return Row(world_name, case, times, peaks, same, jacobian, flops, statistics.median(speeds))


# ------------------------------------------------------------------------------------------- reporting
def machine() -> str:
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu}, {cores} cores available, {torch.get_num_threads()} torch threads, load average {load:.1f} at start; "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, torch {torch.__version__}"
    )


def stamp() -> str:
    """When and on what code the bench ran: the UTC date and the git commit (`-dirty` with uncommitted changes)."""
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown (not a git checkout)"
    return f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}"


class Tee(io.TextIOBase):
    """Standard output that is also written to a file, so the printed results are kept as they were printed."""

    def __init__(self, stream: io.TextIOBase, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.stream, self.file = stream, path.open("w", encoding="utf-8")

    def write(self, text: str) -> int:
        self.file.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.file.flush()
        self.stream.flush()


def fmt_mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / MIB:,.0f} MiB" if n >= 10 * MIB else f"{n / MIB:.1f} MiB"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "n/a"
    return f"{a / b:.1f}x" if b > 0 else "inf"


def print_table(rows: list[Row]) -> None:
    print(
        "| world | computation | Jacobian | straightforward time | reference time | speed-up "
        "| useful GFLOP | lower bound | reference / bound "
        "| straightforward extra peak | reference extra peak | memory ratio | same results |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        st, rt = row.time("straightforward"), row.time("reference")
        sp, rp = row.peak("straightforward"), row.peak("reference")
        print(
            f"| {row.world} | {row.case.name}, {row.case.size} | {row.jacobian} | {st:.3f} s | {rt:.3f} s | {ratio(st, rt)} "
            f"| {row.flops / 1e9:.2f} | {row.bound():.3f} s | {ratio(rt, row.bound())} "
            f"| {fmt_mib(sp)} | {fmt_mib(rp)} | {ratio(sp, rp)} | {row.same} |"
        )


def time_learner_checks(world: World, repeats: int) -> list[tuple[str, float]]:
    """Each learner check, passed the reference solution: the time a learner waits when it passes."""
    runs = [(row.check.__name__, functools.partial(row.run_check, row.reference, world)) for row in EXERCISES]
    timings = []
    for name, run in runs:
        run_times = []
        for _ in range(repeats + 1):  # the first call also loads the SAEs it needs: not counted
            with contextlib.redirect_stdout(io.StringIO()):
                start = time.perf_counter()
                run()
                run_times.append(time.perf_counter() - start)
        timings.append((name, statistics.median(run_times[1:])))
    return timings


def time_board_reporting(repeats: int) -> tuple[bool, float, float]:
    """The SparseTensor check as a learner calls it (`tests.test_sparse_tensor`): outside a hub, and reporting
    each run to a workshop board (tests/_board.py; here a local stand-in for the board that answers 201).

    Returns whether the exported check outside a hub is the check itself (nothing added), and the median
    times of the check outside a hub and with reporting on, their runs interleaved.
    """
    import http.server
    import threading

    import tests
    from part_utils.settings import BOARD_URL_ENV, GRADING_WORLD_ENV
    from solutions import SparseTensor
    from tests import _board

    class Accept(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    check = BY_NAME["sparse_tensor"].check
    unchanged = tests.test_sparse_tensor is check and os.environ.get(BOARD_URL_ENV) is None
    board = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    threading.Thread(target=board.serve_forever, daemon=True).start()
    saved = {name: os.environ.pop(name, None) for name in (BOARD_URL_ENV, _board.TOKEN_ENV, GRADING_WORLD_ENV)}
    os.environ[BOARD_URL_ENV] = f"http://127.0.0.1:{board.server_address[1]}/services/board/api/events"
    os.environ[_board.TOKEN_ENV] = "bench"
    try:
        reporting = _board.reported(check, "sparse_tensor")
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value
    times: dict[str, list[float]] = {"outside": [], "reporting": []}
    with contextlib.redirect_stdout(io.StringIO()):
        for _ in range(repeats + 1):
            for name, run in (("outside", tests.test_sparse_tensor), ("reporting", reporting)):
                start = time.perf_counter()
                run(SparseTensor)
                times[name].append(time.perf_counter() - start)
    board.shutdown()
    board.server_close()
    return unchanged, statistics.median(times["outside"][1:]), statistics.median(times["reporting"][1:])


def time_to_first_check(world: str, threads: int | None) -> dict[str, float]:
    """scripts/first_check.py in a fresh process: seconds since its start at each stage."""
    command = [sys.executable, str(ROOT / "scripts" / "first_check.py"), world]
    if threads:
        command += ["--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return {name: float(seconds) for name, seconds in (line.split("\t") for line in done.stdout.splitlines() if "\t" in line)}


def print_first_checks(timings: dict[str, dict[str, float]]) -> None:
    print("\nTime from a fresh Python process to the first passing checks (scripts/first_check.py), seconds since")
    print("the process started; the learner's own imports (torch, sae_lens, transformer_lens) come first:\n")
    print("| world | libraries | course imports | world loaded | first check | first gradient check | the course's own share |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for world, at in timings.items():
        print(
            f"| {world} | {at['libraries']:.1f} s | {at['course imports']:.1f} s | {at['world']:.1f} s | {at['first check']:.1f} s "
            f"| {at['first gradient check']:.1f} s | {at['first gradient check'] - at['libraries']:.1f} s |"
        )


def sae_bytes(world: World) -> tuple[int, list[str]]:
    loaded, names = 0, []
    for kind, saes in (("resid", world.saes), ("attn", world.attn_saes)):
        for layer in getattr(saes, "loaded_layers", ()):
            sae = saes[layer]
            loaded += sum(p.numel() * p.element_size() for p in sae.parameters())
            names.append(f"{kind} L{layer}")
    return loaded, names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worlds", default="small,gpt2", help="comma-separated: small, gpt2")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of each implementation (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--matmul-precision",
        default="highest",
        choices=("highest", "high"),
        help="torch.set_float32_matmul_precision: high lets CUDA matmuls run in TF32 (make device-check measures both)",
    )
    parser.add_argument("--no-first-check", action="store_true", help="skip the time from a fresh process to the first checks")
    parser.add_argument("--output", type=Path, help="also write everything printed to this file (make bench: build/bench.md)")
    args = parser.parse_args()
    if args.output:
        sys.stdout = Tee(sys.stdout, args.output)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_float32_matmul_precision(args.matmul_precision)
    device = torch.device(args.device)
    memory = PeakMemory(device)
    print(f"Run: {stamp()}")
    print(f"Machine: {machine()}")
    print(f"Device: {device}, float32 matmul precision {args.matmul_precision}. Peak memory: {memory.method()}.")
    print(f"Each implementation: one warm-up call, one call measuring its peak memory, then {args.repeats} timed calls alternating with the other; median time.\n")

    rows: list[Row] = []
    failed = False
    check_times: list[tuple[str, float]] = []
    small_name = None
    for which in args.worlds.split(","):
        start = time.perf_counter()
        token_sae = None
        if which == "small":
            world = small_world(device)
            small_name = f"{world.name} ({world.model.cfg.n_layers}L, d_model {world.model.cfg.d_model}, d_sae {world.saes[world.exercises.token_to_latent.layer].cfg.d_sae})"
            label = world.name
        elif which == "gpt2":
            world, token_sae = gpt2_shaped_world(seed=0, device=device)
            label = "GPT-2 shape"
        else:
            raise SystemExit(f"unknown world {which!r}: choose small or gpt2")
        print(f"== {world.name} world: {world.description}; built in {time.perf_counter() - start:.0f} s")
        counts = latents_per_token(world, token_sae)
        print("   active latents per token: " + ", ".join(f"{k} {v:.1f}" for k, v in counts.items()))
        for case in cases(world, token_sae):
            row = run_case(label, case, args.repeats, memory)
            failed |= row.same.startswith("NO")
            rows.append(row)
            print(
                f"   {case.name}: straightforward {row.time('straightforward'):.3f} s / {fmt_mib(row.peak('straightforward'))}, "
                f"reference {row.time('reference'):.3f} s / {fmt_mib(row.peak('reference'))}; "
                f"bound {row.bound():.3f} s ({row.flops / 1e9:.2f} GFLOP at {row.gflops_per_s:.0f} GFLOP/s); same: {row.same}",
                flush=True,
            )
        if which == "small":
            check_times = time_learner_checks(world, args.repeats)
        if which == "gpt2":
            loaded, names = sae_bytes(world)
            d_in, d_sae = 768, 24576  # both released GPT-2 small SAE families: d_in 768, d_sae 24576
            per_sae = (2 * d_in * d_sae + d_sae + d_in) * 4
            print(
                f"   SAE weights loaded: {loaded / MIB:,.0f} MiB ({len(names)} SAEs: {', '.join(names)}), against "
                f"{24 * per_sae / MIB:,.0f} MiB for all 12 layers of both releases (24 x {per_sae / MIB:.0f} MiB): "
                f"{loaded / (24 * per_sae):.0%}"
            )
        del world, token_sae
        gc.collect()

    print(
        "\nResults (speed-up and memory ratio: straightforward / reference; lower bound: the useful "
        "FLOPs of the Jacobian and the primal passes (scripts/flops.py) at the single-thread matmul speed measured before each timed reference call, median):\n"
    )
    print_table(rows)
    if check_times:
        print(f"\nLearner checks on the {small_name} world, passed the reference solutions (median of {args.repeats}):\n")
        print("| check | time |")
        print("|---|---:|")
        for name, seconds in check_times:
            print(f"| {name} | {seconds:.3f} s |")
    unchanged, outside, reporting = time_board_reporting(max(args.repeats, 10))
    print(f"\nThe workshop board's reports (tests/_board.py), the SparseTensor check's median of {max(args.repeats, 10)}: outside a hub "
          f"{outside * 1000:.1f} ms ({'the check itself, nothing added' if unchanged else 'WRAPPED: something is added outside a hub'}); "
          f"reporting each run to a board {reporting * 1000:.1f} ms")  # fmt: skip
    failed |= not unchanged
    if not args.no_first_check and device.type == "cpu":
        worlds = {"small": "toy", "gpt2": "gpt2-shape"}
        print_first_checks({worlds[w]: time_to_first_check(worlds[w], args.threads) for w in args.worlds.split(",")})
    if failed:
        print("\nFAILED: the reference and the straightforward implementation disagree (see 'same results').")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
