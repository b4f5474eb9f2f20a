"""nbgrader configuration of the course. Run nbgrader from this directory (the Makefile does).

Grading runs through `python -m grading` (see grading/), which sets the grading environment (toy world,
limits) and calls nbgrader once per submission; this file is what every nbgrader command reads.
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import (  # noqa: E402
    AssignLatePenalties,
    CheckCellMetadata,
    ClearHiddenTests,
    GetGrades,
    IgnorePattern,
    LimitOutput,
    SaveAutoGrades,
)

from grading import settings  # noqa: E402
from grading.execute import RobustExecute  # noqa: E402
from grading.feedback import HideHiddenTracebacks  # noqa: E402

c = get_config()  # noqa: F821 (defined by traitlets when it loads this file)

c.CourseDirectory.course_id = "latent-gradients"
c.CourseDirectory.root = str(HERE)
# Parallel autograde processes share the gradebook: wait for its lock instead of failing at once.
c.CourseDirectory.db_url = f"sqlite:///{HERE / 'gradebook.db'}?timeout=120"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]

# Autograde: nbgrader's own pipeline, with the notebook executed by RobustExecute, which survives dying
# and hanging kernels and applies the integrity findings (grading/execute.py).
c.Autograde.autograde_preprocessors = [
    RobustExecute,
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
]
c.OverwriteCells.add_missing_cells = True
c.Execute.timeout = settings.CELL_TIMEOUT_S
c.Execute.startup_timeout = 120
c.Execute.extra_arguments = [
    "--HistoryManager.hist_file=:memory:",
    # Memory limit, silenced warnings and the integrity snapshot, before the first cell runs.
    "--IPKernelApp.exec_lines=['import grading.kernel_setup']",
]
c.RobustExecute.max_kernel_deaths = settings.MAX_KERNEL_DEATHS

# Feedback: hidden tests are stripped, so students see why a cell failed but not the hidden test.
# Tracebacks that quote hidden lines are cut to their message.
c.GenerateFeedback.preprocessors = [ClearHiddenTests, HideHiddenTracebacks, GetGrades, CSSHTMLHeaderPreprocessor]
