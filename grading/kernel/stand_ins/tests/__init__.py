"""The learner checks' names in a grading kernel, which has neither the checks nor the reference solutions.

The notebook calls `tests.test_<name>(...)` after each function; when grading, the grader checks every
graded part itself on hidden inputs (`grading.grader.verdict`), so each check here only says so.
"""

from __future__ import annotations

from typing import Any

NOTE = "[{name}: checked by the grader, on hidden inputs, in the graded cells]"


def __getattr__(name: str) -> Any:
    if not name.startswith("test_"):
        raise AttributeError(name)

    def check(*args: Any, **kwargs: Any) -> None:
        print(NOTE.format(name=name))

    check.__name__ = name
    return check
