"""The grader's settings: where the course lives, and the limits every grading kernel runs under.

Each is a `GRADING_` environment variable, read once here; the world and the cell timeout are the course's own
(`part_utils/settings.py`), so that one variable sets each wherever the course runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from part_utils import settings as course_settings
from part_utils.settings import DEVICE_ENV, GRADING_WORLD_ENV

ROOT = Path(__file__).resolve().parents[2]
COURSE = Path(os.environ.get("GRADING_COURSE_DIR", ROOT / "nbgrader")).resolve()
ASSIGNMENT = "latent_gradients"
NOTEBOOK = "latent_gradients"
# The course directory's folder where the batch runner puts the release it grades in place of an unreadable notebook.
FALLBACK_FOLDER = "fallback"

# What the course derives at run time (GPT-2's tokenizer folder), built once by the grader and read-only
# in every kernel (grading/grader/kernel_cache.py): in the repository, which kernels see, not the course.
KERNEL_CACHE = ROOT / "build" / "kernel-cache"

# The world every grading kernel loads, whatever the notebook asks for (load_world reads GRADING_WORLD_ENV
# in every call): LATENT_GRADIENTS_WORLD, else the toy world, which ships with the course, so that grading
# needs no network and gives every student the same model ("auto" would depend on the grader's cache).
_WORLD = course_settings.world("toy")
GRADING_WORLD = "toy" if _WORLD == "auto" else _WORLD

# Per-cell time limit (LATENT_GRADIENTS_CELL_TIMEOUT).
CELL_TIMEOUT_S = course_settings.cell_timeout_s()
# Memory limit of each grading kernel (RLIMIT_DATA: the heap and every private writable mapping). A
# kernel with the toy world and every check run peaks below 2 GiB; 8 GiB is room for a wasteful but
# honest solution, and a runaway one gets a MemoryError instead of taking the machine down.
MEMORY_LIMIT_GB = float(os.environ.get("GRADING_MEMORY_GB", "8"))
# Seconds an interrupted cell's kernel has to answer before it counts as hung (and is replaced).
UNRESPONSIVE_TIMEOUT_S = int(os.environ.get("GRADING_UNRESPONSIVE_TIMEOUT", "20"))
# Wall-clock limit for grading one submission, everything included (restarts after kernel deaths too).
SUBMISSION_TIMEOUT_S = int(os.environ.get("GRADING_SUBMISSION_TIMEOUT", "3600"))
# How many times a submission's kernel may die (os._exit, a crash, the OOM killer) before the grader
# stops re-running it; each death skips the cell that caused it.
MAX_KERNEL_DEATHS = int(os.environ.get("GRADING_MAX_KERNEL_DEATHS", "6"))


# The instructor's secret that chooses the hidden tests' inputs (grading/grader/hidden_params.py); never
# passed to a grading kernel.
SECRET_ENV = "GRADING_SECRET"


def kernel_threads() -> int:
    """Threads per grading kernel: GRADING_THREADS (the runner sets cores / jobs), else every core."""
    return max(1, int(os.environ.get("GRADING_THREADS") or os.cpu_count() or 1))


def thread_env(threads: int) -> dict[str, str]:
    """The variables that size OpenMP's, MKL's and OpenBLAS's thread pools. A process of torch that runs beside
    others on shared cores needs them: an OpenMP pool larger than its share of the cores spins while it waits."""
    return {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def kernel_env(threads: int | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every nbgrader process and grading kernel: the grading world, no stderr noise."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k != SECRET_ENV}
    env.update(
        {
            GRADING_WORLD_ENV: GRADING_WORLD,
            DEVICE_ENV: env.get(DEVICE_ENV, "cpu"),
            # nbgrader scores a cell 0 when anything reaches stderr: progress bars and warnings do.
            "TQDM_DISABLE": "1",
            "PYTHONWARNINGS": "ignore",
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "TRANSFORMERS_VERBOSITY": "error",
            "MALLOC_ARENA_MAX": "2",
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
            # nbgrader runs the environment's own tools (alembic, for the gradebook) by name.
            "PATH": os.pathsep.join(p for p in (str(Path(sys.executable).parent), env.get("PATH", "")) if p),
            "GRADING_MEMORY_BYTES": str(int(MEMORY_LIMIT_GB * 2**30)),
        }
    )
    if threads is not None:
        env.update(thread_env(threads))
    return env
