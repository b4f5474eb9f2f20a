"""The Makefile's grading targets call these commands. By stage:

- `grader/` runs in the grader's own processes, never in a student's kernel; a grading job's module holds
  its logic and its nbgrader preprocessor: settings, sandbox (the kernel provisioner), normalize,
  integrity, hidden_params (the hidden inputs from the secret and the student's id), verdict (each graded
  part's score, from what the learner's code returned on those inputs), demonstrations, runner, summary;
- `preprocessors/` are the other nbgrader preprocessors, one job each: kernel_cache, execute, outputs
  (autograde stage); feedback, offline_math (feedback stage); course (the course directory they share);
- `kernel/` runs inside the student's sandboxed kernel: setup, calls (the grader's calls of the
  learner's code), codec (the values those calls exchange: JSON and safetensors).

docs/instructor.md walks through the pipeline; the example submissions are in course_fixtures/.
"""
