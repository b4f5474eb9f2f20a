"""One submission's grading record: what every step of autograde found, carried in nbgrader's `resources`.

`OpenRecord`, the first step, creates it; each later step appends to it (normalization notes, integrity
flags and review evidence, demonstrations skipped, kernel events, sandbox notes, verdicts, output notes);
`WriteGradingNotes`, the last step, renders the "Grading notes" cell and writes reports/runs/<student>.json.
nbgrader runs autograde as two conversions (sanitize, then autograde), each with fresh `resources`: between
them the record rides in the sanitized notebook's metadata (`CarryRecord`, `ResumeRecord`), a file that only
nbgrader writes, after `NormalizeSubmission` replaced the submission's own metadata with the release's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor

from grading import cell_metadata
from grading.grader.settings import FALLBACK_FOLDER

RESOURCE_KEY = "latent_gradients_record"
NOTES_CELL_ID = "grading-notes"
NOTES_MARK = "grader_notes"
NOTHING_TO_REPORT = "Nothing to report: every cell ran normally."


@dataclass
class GradingRecord:
    """What the grading steps found in one submission; `report()` is what reports/runs/<student>.json holds."""

    student: str = ""
    fallback_note: str = ""  # the batch runner graded the release in place of an unreadable notebook
    notes: list[str] = field(default_factory=list)  # normalization: cells restored
    own_code: list[tuple[str, str]] = field(default_factory=list)  # (exercise, source) for the integrity scan
    flags: dict[str, list[str]] = field(default_factory=dict)  # integrity findings, per exercise ("*": all)
    review: dict[str, list[str]] = field(default_factory=dict)  # functions alike a reference's, per exercise
    demonstrations_skipped: list[str] = field(default_factory=list)  # grade ids not run
    kernel_cache: str = ""  # the folder every kernel reads the course's derived files from
    events: list[dict[str, Any]] = field(default_factory=list)  # kernel_died, kernel_hung, timeout: cell, grade_id, note
    sandbox_notes: list[str] = field(default_factory=list)  # what the sandbox did to the kernels
    verdicts: dict[str, bool] = field(default_factory=dict)  # graded part's grade id -> passed
    output_notes: list[str] = field(default_factory=list)  # writes refused, outputs truncated

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GradingRecord:
        known = {f.name for f in fields(cls)}
        record = cls(**{key: value for key, value in data.items() if key in known})
        record.own_code = [(exercise, source) for exercise, source in record.own_code]
        return record

    def leading_notes(self) -> list[str]:
        return [*([self.fallback_note] if self.fallback_note else []), *self.notes, *dict.fromkeys(self.sandbox_notes)]

    def all_notes(self) -> list[str]:
        return [*self.leading_notes(), *(event["note"] for event in self.events), *self.output_notes]

    def report(self) -> dict[str, Any]:
        data = asdict(self)
        del data["own_code"]
        data["notes"] = self.all_notes()
        return data


def record_of(resources: dict) -> GradingRecord:
    """The record in `resources`, created when a step runs outside autograde (a test, formgrader's preview)."""
    record = resources.get(RESOURCE_KEY)
    if record is None:
        record = resources[RESOURCE_KEY] = GradingRecord(student=resources.get("nbgrader", {}).get("student", ""))
    return record


def _is_under(path: str, folder: Path) -> bool:
    return bool(path) and Path(path).resolve().is_relative_to(folder.resolve())


class OpenRecord(NbGraderPreprocessor):
    """First step of autograde's sanitize stage: a new record; the runner's note when it graded the fallback."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        resources.pop(RESOURCE_KEY, None)
        record = record_of(resources)
        fallback = Path(CourseDirectory(config=self.config).root) / FALLBACK_FOLDER
        # Only a notebook the runner put in the fallback folder is trusted to carry a note: a submission's is not.
        if _is_under(resources.get("metadata", {}).get("path", ""), fallback):
            record.fallback_note = str(cell_metadata.grading_job(nb).get(cell_metadata.RUNNER_NOTE, ""))
        return nb, resources


class CarryRecord(NbGraderPreprocessor):
    """Last step of the sanitize stage: the record into the sanitized notebook's metadata, for `ResumeRecord`."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        cell_metadata.grading_job(nb, create=True)[cell_metadata.RECORD] = asdict(record_of(resources))
        return nb, resources


class ResumeRecord(NbGraderPreprocessor):
    """First step of the autograde stage: the record `CarryRecord` left, out of the notebook and into `resources`."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        carried = cell_metadata.grading_job(nb, create=True).pop(cell_metadata.RECORD, None)
        resources[RESOURCE_KEY] = GradingRecord.from_json(carried) if carried else GradingRecord()
        resources[RESOURCE_KEY].student = resources.get("nbgrader", {}).get("student", resources[RESOURCE_KEY].student)
        return nb, resources


def notes_text(record: GradingRecord) -> str:
    """The "Grading notes" cell's Markdown: every note of the record, each exercise the scan flagged among them."""
    lines = [f"- {note}" for note in record.leading_notes()] + [f"- {event['note']}" for event in record.events]
    for exercise, reasons in sorted(record.flags.items()):
        lines.append(f"- **Integrity, no credit for {'every exercise' if exercise == '*' else exercise}**: your code " + "; ".join(reasons) + ".")
    lines += [f"- {note}" for note in record.output_notes]
    return "## Grading notes\n\n" + ("\n".join(lines) if lines else NOTHING_TO_REPORT)


class WriteGradingNotes(NbGraderPreprocessor):
    """Last step of autograde: the notes cell, first in the notebook and marked for the feedback, and the run report."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        record = record_of(resources)
        cell = nbformat.v4.new_markdown_cell(notes_text(record), id=NOTES_CELL_ID)
        cell.metadata[cell_metadata.COURSE] = {NOTES_MARK: True}
        nb.cells.insert(0, cell)
        if record.student:
            runs = Path(CourseDirectory(config=self.config).root) / "reports" / "runs"
            runs.mkdir(parents=True, exist_ok=True)
            (runs / f"{record.student}.json").write_text(json.dumps(record.report(), indent=1), encoding="utf-8")
        return nb, resources
