"""The batch runner's workers (grading/grader/runner.py, worker.py), on their own.

The nbgrader end-to-end test (test_nbgrader.py) grades a whole batch through them; this one checks, in
a second, the per-submission time limit: the worker that overran is killed, its kernel's scratch folder
removed, and the next submission gets a fresh one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from grading.grader import runner, sandbox, settings

pytestmark = pytest.mark.nbgrader


def test_a_submission_past_its_time_limit_costs_only_its_worker(tmp_path, monkeypatch) -> None:
    # No worker can answer in 0 s (it imports nbgrader first): the limit is reached every time.
    monkeypatch.setattr(settings, "SUBMISSION_TIMEOUT_S", 0)
    log = tmp_path / "someone.log"
    worker = runner.Worker(tmp_path)
    # what the worker's kernel would leave, killed with it
    left = Path(tempfile.gettempdir()) / f"{sandbox.SCRATCH_PREFIX}{worker._start().pid}-left"
    left.mkdir()
    assert worker.autograde("someone", log, "submitted") == 124
    assert not left.exists(), "the killed worker's scratch folder is left"
    assert "gave up after 0 s" in log.read_text()
    assert worker.process is None
    first = worker._start()
    worker.close()
    assert first.exitcode is not None, "the worker outlived close()"
