"""The course's autograder, inside nbgrader's own pipeline (nbgrader/nbgrader_config.py).

    python -m grading {release,autograde,feedback,grades,collect,secret}   # grading/__main__.py; --help

The Makefile's grading targets call these commands. By stage:

- `grader/` runs in the grader's own processes, never in a student's kernel:
  `settings` (paths, limits, the kernel's environment), `sandbox` (the kernel provisioner: bubblewrap),
  `normalize` (a submission rebuilt from the release), `integrity` (static scan of the student's code),
  `hidden_params` (the hidden tests' inputs from the instructor's secret), `demonstrations` (which
  released demonstration cells need not run), `runner` (N at a time, a row for every submission),
  `summary` (the class summary);
- `preprocessors/` are the nbgrader preprocessors, one job each, in pipeline order: `normalize`,
  `integrity` (sanitize stage); `hidden_tests`, `kernel_cache`, `demonstrations`, `execute`, `outputs`
  (autograde stage); `feedback`, `offline_math` (feedback stage); and `course`, what those that read
  the course directory share (its root and releases, from nbgrader's own `CourseDirectory` setting);
- `kernel/` runs inside the student's sandboxed kernel: `setup` (first: memory cap, silenced
  warnings, the guard's snapshot), `guard` (runtime integrity), `hidden` (the hidden tests the graded
  cells call).

The example submissions of the project's tests and benchmark are in course_fixtures/grading_examples.py.
"""
