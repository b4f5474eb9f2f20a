"""Runs first in every grading kernel (`--IPKernelApp.exec_lines`), before any cell of the notebook.

- caps the kernel's memory (RLIMIT_DATA), so that a runaway allocation is a MemoryError in one cell
  rather than the OOM killer taking the machine's other kernels down;
- silences warnings: nbgrader scores a cell 0 when anything reaches stderr;
- imports the checks, caches the reference solutions, fingerprints the worlds the notebook loads and
  snapshots the checks for `grading.kernel.guard`;
- has a visible check that fails after the checks or the world were changed say so first (IPython's
  custom exception handler): the hidden region, which says it where the visible check passes, is then
  never reached.
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
from IPython import get_ipython  # noqa: E402

import tests  # noqa: E402  (after the limits: the checks import torch)
from grading.kernel import guard, hidden  # noqa: E402

guard.memoize_reference()
guard.watch_worlds()
guard.snapshot()


def _tampering_first(shell, etype, value, tb, tb_offset=None) -> None:  # IPython's handler signature
    """The failed check's message, after the integrity message if the checks or the world were changed: a patched
    library can make a learner's function and the reference disagree as well as agree."""
    message = hidden.tampering(value.exercise)
    if message:
        print(message)
    shell.showtraceback((etype, value, tb), tb_offset=tb_offset)


get_ipython().set_custom_exc((tests.CheckFailed,), _tampering_first)
