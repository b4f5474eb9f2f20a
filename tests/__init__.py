"""Learner checks, called from the notebooks as `tests.test_<exercise>(fn, model, saes)`.

Each runs the learner's function and the reference solution on the same world, and either prints
what matched or raises `CheckFailed` with what is wrong and, for common mistakes, how to fix it.
These are not tests of this project (those live in project_tests/): pytest must never collect them.

The checks are exported by name from the exercise table (`tests.exercises.EXERCISES`); the hints
catalogue (`tests.hints`) names the mistakes they recognise.
"""

from tests._board import reported
from tests._report import CheckFailed
from tests.exercises import BY_NAME, EXERCISES, Exercise

_CHECKS = [(exercise.name, check) for exercise in EXERCISES for check in (exercise.check, *exercise.intermediate_checks)]
# In a learner's server in the workshop, each run is also reported to the instructor's board (tests/_board.py).
globals().update({check.__name__: reported(check, exercise) for exercise, check in _CHECKS})

__all__ = ["BY_NAME", "EXERCISES", "CheckFailed", "Exercise", *(check.__name__ for _, check in _CHECKS)]
