"""The Makefile's grading targets call these commands. By stage:

- `grader/` runs in the grader's own processes, never in a student's kernel. Each grading job has one
  module, holding its logic and its nbgrader preprocessor: record (the grading record the jobs append to),
  normalize, integrity, kernel_cache, execute, verdict (each graded part's score, from what the learner's
  code returned on hidden inputs), outputs, demonstrations (sanitize and autograde stages); feedback,
  offline_math (feedback stage). Beside them: settings, course (the course directory they share), sandbox
  (the kernel provisioner) and root_launcher (the workshop's way to start it), hidden_params (the hidden
  inputs from the secret and the student's id), runner and worker (`make autograde`'s batch), summary;
- `cell_metadata.py` reads the cells' nbgrader and course metadata, for every job;
- `kernel/` runs inside the student's sandboxed kernel: setup, calls (the grader's calls of the
  learner's code), codec (the values those calls exchange: JSON and safetensors).

docs/instructor.md walks through the pipeline; the example submissions are in course_fixtures/.
"""
