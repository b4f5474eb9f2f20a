"""`make lint`'s prose rules (scripts/check_prose.py) reject history and let present-tense prose through."""

from __future__ import annotations

import pytest

from scripts.check_prose import HISTORY


def _rules_broken(text: str) -> list[str]:
    return [rule for rule, pattern in HISTORY.items() if pattern.search(text)]


@pytest.mark.parametrize(
    "text",
    [
        "# each kernel used to build its own tokenizer folder",
        "# a long prompt no longer runs out of memory",
        "measured in this session",
        "the target of issue 14",
        "run D graded the course as it was",
        "the references of the previous commit (bd1fe13)",
        "measured on 27 Nov 2026",
        "it takes 9 ms for 9 rows",
    ],
)
def test_history_is_rejected(text: str) -> None:
    assert _rules_broken(text), text


@pytest.mark.parametrize(
    "text",
    [
        "# the secret is used to choose the hidden tests' inputs",
        "# the grader runs the notebook in a sandboxed kernel",
        "GRADING_CELL_TIMEOUT: seconds a graded cell may run (default 300)",
        "a 1e-3 tolerance, 10x the largest rounding",
        "python scripts/bench_grading.py --n 8 --before main",
    ],
)
def test_present_tense_prose_passes(text: str) -> None:
    assert not _rules_broken(text), _rules_broken(text)
