"""The course's autograder, inside nbgrader's own pipeline (nbgrader/nbgrader_config.py).

    python -m grading {release,autograde,feedback,grades,collect,secret}   # grading/__main__.py; --help

The Makefile's grading targets call these commands. By stage: `grader/` runs in the grader's own
processes, never in a student's kernel (settings, the sandbox's kernel provisioner, normalization, the
static integrity scan, the hidden tests' inputs, demonstrations, the runner, the class summary);
`preprocessors/` are the nbgrader preprocessors, one job each (normalize and integrity at the sanitize
stage; hidden_tests, kernel_cache, demonstrations, execute and outputs at autograde; feedback and
offline_math at feedback; `course`, the course directory they share); `kernel/` runs inside the
student's sandboxed kernel (setup, the runtime guard, the hidden tests). docs/instructor.md walks
through the pipeline. The example submissions are in course_fixtures/grading_examples.py.
"""
