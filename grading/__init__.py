"""The course's autograder around nbgrader: batch runner, robust execution, hidden tests, integrity, summary.

    python -m grading autograde [--jobs N] [--student ID ...]   # every submission in nbgrader/submitted/
    python -m grading feedback                                  # HTML feedback, hidden tests stripped
    python -m grading grades                                    # grades.csv + per-exercise class summary

The Makefile's `release`, `autograde`, `feedback` and `grades` targets call these. Modules:

- `settings`:     paths, limits (per-cell timeout, memory) and the grading world, overridable by env;
- `normalize`:    rebuilds a submission from the release, keeping only the student's own cells;
- `integrity`:    static scan of the student's code for patched checks and reference-solution imports;
- `execute`:      the nbgrader Execute preprocessor that survives dying and hanging kernels;
- `kernel_setup`: runs first in every grading kernel (memory limit, no warnings, integrity snapshot);
- `hidden`:       the hidden tests the graded cells run (a second world and prompt);
- `runner`:       grades submissions in parallel, one nbgrader process each;
- `summary`:      the class summary (table and plotly chart).
"""
