"""Runs first in every grading kernel (`--IPKernelApp.exec_lines`), before any cell of the notebook.

- caps the kernel's memory (RLIMIT_DATA), so that a runaway allocation is a MemoryError in one cell
  rather than the OOM killer taking the machine's other kernels down;
- silences warnings: nbgrader scores a cell 0 when anything reaches stderr;
- puts the grading kernel's `tests` (grading/kernel/stand_ins/tests) first on the import path: the
  learner checks and the reference solutions are hidden from grading kernels, and the notebook's
  `import tests` and check calls find stand-ins that say the grader checks instead.
"""

from __future__ import annotations

import os
import resource
import sys
import warnings
from pathlib import Path

_limit = int(os.environ.get("GRADING_MEMORY_BYTES", "0"))
if _limit > 0:
    resource.setrlimit(resource.RLIMIT_DATA, (_limit, _limit))
warnings.simplefilter("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent / "stand_ins"))
