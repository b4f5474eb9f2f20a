"""The Makefile's grading targets call these commands. By stage:

- `grader/` runs in the grader's own processes, never in a student's kernel. Each grading job has one
  module, holding its logic and its nbgrader preprocessor: record (the grading record the jobs append to),
  normalize, integrity, kernel_cache, execute, verdict (each graded part's score, from what the learner's
  code returned on hidden inputs), outputs, demonstrations (sanitize and autograde stages); feedback,
  offline_math (feedback stage). Beside them: settings, course (the course directory they share), sandbox
  (the kernel provisioner), kernel_template (a batch worker's kernels, forked from one that has done their
  imports) and root_launcher (the workshop's way to start kernels), hidden_params (the hidden inputs from
  the secret and the student's id), runner and worker (`make autograde`'s batch), summary;
- `cell_metadata.py` reads the cells' nbgrader and course metadata, for every job;
- `kernel/` runs in the sandbox: setup, calls (the grader's calls of the learner's code), codec (the values
  they exchange: JSON and safetensors), template (what a batch worker forks its kernels from).

docs/instructor.md walks through the pipeline; the example submissions are in course_fixtures/.
"""
