"""nbgrader configuration of the course. Run nbgrader from this directory (the Makefile does).

The whole grading pipeline is here, so that `nbgrader autograde latent_gradients` run by hand in this
folder, formgrader's Autograde button and `make autograde` (which only adds N at a time and the
summary) grade alike: normalization and the integrity scan (sanitize stage), then execution in the
sandboxed kernel (grading/grader/sandbox.py) in the grading environment, of every cell but the released
demonstrations, with the notes and flags applied.
"""

from pathlib import Path

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearOutput,
    DeduplicateIds,
    GetGrades,
    IgnorePattern,
    LimitOutput,
    OverwriteCells,
    OverwriteKernelspec,
    SaveAutoGrades,
)
from nbgrader.server_extensions.formgrader.handlers import template_path as NBGRADER_TEMPLATES

from grading.grader import settings
from grading.grader.demonstrations import SkipDemonstrations
from grading.grader.execute import RobustExecute
from grading.grader.feedback import TEMPLATES, ClearHiddenTestsOfChecks, FeedbackExporter, HideHiddenTracebacks
from grading.grader.integrity import IntegrityScan
from grading.grader.kernel_cache import ShareKernelCache
from grading.grader.normalize import NormalizeSubmission
from grading.grader.offline_math import MathAsMathML
from grading.grader.outputs import LimitOutputBytes, SanitizeOutputs, StderrIsNotAFailure
from grading.grader.record import CarryRecord, OpenRecord, ResumeRecord, WriteGradingNotes

HERE = Path(__file__).resolve().parent
c = get_config()  # noqa: F821 (defined by traitlets when it loads this file)

c.CourseDirectory.course_id = "latent-gradients"
c.CourseDirectory.root = str(HERE)
# Parallel autograde processes share the gradebook: wait for its lock instead of failing at once.
c.CourseDirectory.db_url = f"sqlite:///{HERE / 'gradebook.db'}?timeout=120"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]

# Autograde, sanitize stage: nbgrader's own, after the submission is rebuilt from the release and its
# code scanned (grading/grader/normalize.py, grading/grader/integrity.py).
c.Autograde.sanitize_preprocessors = [
    OpenRecord,
    NormalizeSubmission,
    IntegrityScan,
    ClearOutput,
    DeduplicateIds,
    OverwriteKernelspec,
    OverwriteCells,
    CheckCellMetadata,
    CarryRecord,
]
# Autograde: nbgrader's own pipeline, with the notebook executed by RobustExecute, which survives dying
# and hanging kernels, has the grader score each graded part from the learner's code's returned values on
# hidden inputs (grading/grader/verdict.py) and applies the integrity findings (grading/grader/execute.py),
# in sandboxed kernels.
# Kernels read GPT-2's tokenizer from a folder the grader built once (grading/grader/kernel_cache.py),
# and the released demonstrations, which score nothing, are not run (grading/grader/demonstrations.py).
c.Autograde.autograde_preprocessors = [
    ResumeRecord,
    ShareKernelCache,
    SkipDemonstrations,
    RobustExecute,
    StderrIsNotAFailure,
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    SanitizeOutputs,
    LimitOutputBytes,
    WriteGradingNotes,
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadata,
]
c.OverwriteCells.add_missing_cells = True
c.Execute.timeout = settings.CELL_TIMEOUT_S
c.Execute.startup_timeout = 120
# When the last cell has run, the kernel is killed rather than asked to exit: nothing of it is kept, and a
# graceful exit (interpreter and torch teardown, polled by jupyter_client) idled its worker 2-3 s. Its
# leftover processes are noted first (grading/grader/sandbox.py) and die with its PID namespace.
c.Execute.shutdown_kernel = "immediate"
c.Execute.extra_arguments = [
    "--HistoryManager.hist_file=:memory:",
    # Memory limit, silenced warnings and the stand-in checks, before the first cell runs.
    "--IPKernelApp.exec_lines=['import grading.kernel.setup']",
]
c.RobustExecute.max_kernel_deaths = settings.MAX_KERNEL_DEATHS
c.RobustExecute.unresponsive_timeout = settings.UNRESPONSIVE_TIMEOUT_S
# The kernel sees neither the gradebook nor any submission nor the instructor's secret (all in here), nor
# the references: the solutions, the checks that compute them, the grader's code, the generated notebooks
# and the repository's history.
c.SandboxProvisioner.hidden_paths = [str(HERE)] + [
    str(settings.ROOT / folder)
    for folder in ("solutions", "tests", "grading/grader", "notebooks", "project_tests", "course_fixtures", "scripts", ".git")
]

# What a submission displays is cleaned when it is graded (grading/grader/outputs.py), so that neither
# its feedback nor formgrader's view of it runs or loads anything; Markdown cells are cleaned when drawn.
c.HTMLExporter.filters = {"markdown2html": "grading.grader.outputs.markdown_to_clean_html"}

# Feedback: hidden tests are stripped from the checks, so students see why a cell failed but not the hidden
# test. Tracebacks that quote hidden lines are cut to their message. Math is MathML, which needs no CDN and no
# script. The page (grading/grader/feedback.py) carries a Content-Security-Policy and frames the grader's notes.
c.GenerateFeedback.preprocessors = [ClearHiddenTestsOfChecks, HideHiddenTracebacks, SanitizeOutputs, MathAsMathML, GetGrades, CSSHTMLHeaderPreprocessor]
c.GenerateFeedback.exporter_class = FeedbackExporter
c.FeedbackExporter.template_name = "latent_gradients_feedback"
c.FeedbackExporter.extra_template_basedirs = [NBGRADER_TEMPLATES, str(TEMPLATES)]
# nbgrader's feedback template, which ours extends by name, and the stylesheet it inlines.
c.FeedbackExporter.extra_template_paths = [NBGRADER_TEMPLATES, str(Path(NBGRADER_TEMPLATES).parent / "static" / "node_modules" / "bootstrap" / "dist" / "css")]
