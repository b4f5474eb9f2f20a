"""The course's autograder, inside nbgrader's own pipeline (nbgrader/nbgrader_config.py).

    python -m grading autograde [--jobs N] [--student ID ...]   # every submission in nbgrader/submitted/
    python -m grading feedback                                  # HTML feedback, hidden tests stripped
    python -m grading grades                                    # grades.csv + per-exercise class summary
    python -m grading secret                                    # the hidden tests' secret, created if missing

The Makefile's `release`, `autograde`, `feedback` and `grades` targets call these. By stage:

- `grader/` runs in the grader's own processes, never in a student's kernel; a grading job's module
  holds its logic and its nbgrader preprocessor:
  `settings` (paths, limits, the kernel's environment), `sandbox` (the kernel provisioner: bubblewrap),
  `normalize` (a submission rebuilt from the release: `NormalizeSubmission`), `integrity` (static scan of
  the student's code: `IntegrityScan`),
  `hidden_params` (the hidden tests' inputs from the instructor's secret and the student's id),
  `verdict` (each graded part's score, from what the learner's code returned on those inputs),
  `demonstrations` (which released demonstration cells need not run: `SkipDemonstrations`), `runner` (N
  at a time, a row for every submission), `summary` (the class summary);
- `preprocessors/` are the other nbgrader preprocessors, one job each: `kernel_cache`, `execute`,
  `outputs` (autograde stage); `feedback`, `offline_math` (feedback stage); and `course`, what those that
  read the course directory share (its root and releases, from nbgrader's own `CourseDirectory` setting);
- `kernel/` runs inside the student's sandboxed kernel: `setup` (first: memory cap, silenced
  warnings, the stand-in checks of `stand_ins/`), `calls` (the grader's calls of the learner's code),
  `codec` (the values those calls exchange: JSON and safetensors, shared with the grader).

The example submissions of the project's tests and benchmark are in project_tests/grading_examples.py.
"""
