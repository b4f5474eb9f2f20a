"""Runs first in every grading kernel (`--IPKernelApp.exec_lines`), before any cell of the notebook.

- caps the kernel's memory (RLIMIT_DATA), so that a runaway allocation is a MemoryError in one cell
  rather than the OOM killer taking the machine's other kernels down;
- silences warnings: nbgrader scores a cell 0 when anything reaches stderr;
- imports the checks, caches the reference solutions, fingerprints the worlds the notebook loads and
  snapshots the checks for `grading.kernel.guard`.
"""

from __future__ import annotations

import os
import resource
import warnings

_limit = int(os.environ.get("GRADING_MEMORY_BYTES", "0"))
if _limit > 0:
    resource.setrlimit(resource.RLIMIT_DATA, (_limit, _limit))
warnings.simplefilter("ignore")

import torch.testing  # noqa: E402,F401

import tests  # noqa: E402,F401  (after the limits: the checks import torch; imported for guard.snapshot)
from grading.kernel import guard, hidden  # noqa: E402,F401

guard.memoize_reference()
guard.watch_worlds()
guard.snapshot()
