"""nbgrader preprocessors for what a graded notebook's cells printed, run after execution.

- `StderrIsNotAFailure`: nbgrader 0.9 scores a graded cell 0 when anything reached its stderr, so a
  correct function that logs a line would lose its points. The stderr text of graded cells is kept,
  as ordinary output marked `[stderr]`; a failing check still fails, by its error.
- `LimitOutputBytes`: nbgrader's LimitOutput caps lines, not bytes; one `print` of 100 MB is one line.
  Each cell's text (streams, errors, plain text) is cut to `max_bytes` in all, with a visible note;
  a rich output (the course's plots are HTML and JavaScript of a few hundred kB) larger than
  `max_rich_bytes` is replaced by a note. The grading notes and the run report
  (reports/runs/<student>.json) say so.
"""

from __future__ import annotations

import json
import os

from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer, Unicode

from grading.preprocessors.execute import NOTES_CELL_ID, _is_grade

TRUNCATED = "\n… [output truncated by the grader: {dropped:,} more bytes]\n"


class StderrIsNotAFailure(NbGraderPreprocessor):
    def preprocess_cell(self, cell: NotebookNode, resources: dict, index: int) -> tuple[NotebookNode, dict]:
        if _is_grade(cell):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "stream" and output.get("name") == "stderr":
                    output["name"] = "stdout"
                    output["text"] = "".join(f"[stderr] {line}" for line in output.get("text", "").splitlines(keepends=True))
        return cell, resources


def _text_fields(output: NotebookNode) -> list[tuple[dict, str]]:
    if output.get("output_type") == "stream":
        return [(output, "text")]
    if output.get("output_type") == "error":
        return [(output, "evalue")]
    return [(output["data"], "text/plain")] if "text/plain" in output.get("data", {}) else []


def _size(value: object) -> int:
    text = "".join(value) if isinstance(value, list) else value
    return len((text if isinstance(text, str) else json.dumps(text)).encode("utf-8", errors="replace"))


class LimitOutputBytes(NbGraderPreprocessor):
    max_bytes = Integer(100_000, help="Bytes of text output kept per cell.").tag(config=True)
    max_rich_bytes = Integer(3_000_000, help="Bytes of rich output (HTML, images, ...) kept per cell.").tag(config=True)
    reports_directory = Unicode("", help="Where RobustExecute wrote reports/runs/<student>.json.").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        truncated = []
        for index, cell in enumerate(nb.cells):
            budget = self.max_bytes
            for output in cell.get("outputs", []):
                rich = {key: value for key, value in output.get("data", {}).items() if key != "text/plain"}
                if sum(map(_size, rich.values())) > self.max_rich_bytes:
                    output["data"] = {"text/plain": f"[a {sum(map(_size, rich.values())):,}-byte rich output, removed by the grader]"}
                    if index not in truncated:
                        truncated.append(index)
                for owner, key in _text_fields(output):
                    value = owner[key]
                    text = "".join(value) if isinstance(value, list) else value
                    if not isinstance(text, str):
                        text = json.dumps(text)
                    size = len(text.encode("utf-8", errors="replace"))
                    if size > budget:
                        kept = text.encode("utf-8", errors="replace")[:budget].decode("utf-8", errors="ignore")
                        owner[key] = kept + TRUNCATED.format(dropped=size - len(kept.encode("utf-8")))
                        if index not in truncated:
                            truncated.append(index)
                    budget = max(0, budget - size)
        if truncated:
            note = (f"The output of cell(s) {', '.join(map(str, truncated))} was truncated: the grader keeps {self.max_bytes:,} bytes "
                    f"of text and {self.max_rich_bytes:,} bytes of rich output per cell.")
            for cell in nb.cells:
                if cell.get("id") == NOTES_CELL_ID:
                    cell.source = cell.source.replace("Nothing to report: every cell ran normally.", "").rstrip() + f"\n- {note}"
            student = resources.get("nbgrader", {}).get("student")
            report = os.path.join(self.reports_directory, "runs", f"{student}.json")
            if self.reports_directory and student and os.path.exists(report):
                with open(report, encoding="utf-8") as file:
                    data = json.load(file)
                data.setdefault("notes", []).append(note)
                with open(report, "w", encoding="utf-8") as file:
                    json.dump(data, file, indent=1)
        return nb, resources
