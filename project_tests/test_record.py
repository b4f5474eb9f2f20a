"""The grading record (grading/grader/record.py): opened by the first step, carried across autograde's two
conversions, rendered and written by the last; only the runner's fallback notebook may carry a note."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from traitlets.config import Config

from grading import cell_metadata
from grading.grader import settings
from grading.grader.record import NOTES_CELL_ID, NOTES_MARK, CarryRecord, OpenRecord, ResumeRecord, WriteGradingNotes, record_of

NOTE = "the runner graded the release in place of this notebook"


def _config(course: Path) -> Config:
    config = Config()
    config.CourseDirectory.root = str(course)
    return config


def _noted_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    cell_metadata.grading_job(nb, create=True)[cell_metadata.RUNNER_NOTE] = NOTE
    return nb


def _resources(folder: Path) -> dict:
    return {"nbgrader": {"student": "alice", "assignment": "a", "notebook": "n"}, "metadata": {"path": str(folder)}}


def test_only_the_runners_fallback_notebook_carries_a_note(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _, fallback = OpenRecord(config=config).preprocess(_noted_notebook(), _resources(tmp_path / settings.FALLBACK_FOLDER / "alice" / "a"))
    _, submitted = OpenRecord(config=config).preprocess(_noted_notebook(), _resources(tmp_path / "submitted" / "alice" / "a"))
    assert record_of(fallback).fallback_note == NOTE
    assert record_of(submitted).fallback_note == ""


def test_the_record_crosses_the_two_conversions_and_is_written_once(tmp_path: Path) -> None:
    config = _config(tmp_path)
    sanitizing = _resources(tmp_path / "submitted" / "alice" / "a")
    nb, sanitizing = OpenRecord(config=config).preprocess(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), sanitizing)
    record_of(sanitizing).notes.append("Graded cell `g` was edited; the original was restored and graded.")
    record_of(sanitizing).flags["e1"] = ["imports solutions"]
    nb, _ = CarryRecord(config=config).preprocess(nb, sanitizing)
    nb = nbformat.reads(nbformat.writes(nb), as_version=4)  # nbgrader writes the sanitized notebook and reads it back

    autograding = _resources(tmp_path / "autograded" / "alice" / "a")
    nb, autograding = ResumeRecord(config=config).preprocess(nb, autograding)
    assert cell_metadata.RECORD not in cell_metadata.grading_job(nb)
    record = record_of(autograding)
    assert record.flags == {"e1": ["imports solutions"]} and record.student == "alice"
    record.events.append({"event": "timeout", "cell": 0, "grade_id": None, "note": "Cell 0 ran past the limit."})
    nb, _ = WriteGradingNotes(config=config).preprocess(nb, autograding)

    notes = nb.cells[0]
    assert notes.id == NOTES_CELL_ID and notes.metadata[cell_metadata.COURSE][NOTES_MARK] is True
    assert "was edited" in notes.source and "Cell 0 ran past the limit." in notes.source and "no credit for e1" in notes.source
    report = json.loads((tmp_path / "reports" / "runs" / "alice.json").read_text(encoding="utf-8"))
    assert report["flags"] == {"e1": ["imports solutions"]} and report["events"][0]["event"] == "timeout"
    assert "own_code" not in report and any("was edited" in note for note in report["notes"])
