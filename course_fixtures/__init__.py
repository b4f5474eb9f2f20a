"""Example learner code that the project's tests, benchmarks and maintainer tools share.

- `catalogue/`: correct and wrong learner solutions of every exercise, the proof that each check accepts
  every correct formulation and rejects wrong ones;
- `grading_examples`: whole example submissions (solved, partial, failing, hostile) for the grader.

Not installed, and never imported by the course itself: only from the repository root.
"""
