"""nbgrader preprocessors for what a graded notebook's cells printed and displayed, run after execution.

- `StderrIsNotAFailure`: nbgrader 0.9 scores a graded cell 0 when anything reached its stderr, so a
  correct function that logs a line would lose its points. The stderr text of graded cells is kept,
  as ordinary output marked `[stderr]`; a failing check still fails, by its error.
- `LimitOutputBytes`: nbgrader's LimitOutput caps lines, not bytes; one `print` of 100 MB is one line.
  Per cell, text (streams, errors, plain text) is cut to `max_bytes` in all, with a visible note; every
  other MIME type, and the outputs' metadata, share `max_rich_bytes`: an output that would pass it is
  replaced by a note, which goes into the grading record.
- `SanitizeOutputs`: what a submission displays reaches its reader's browser (the feedback, formgrader's
  view of the autograded notebook). HTML is cleaned by nh3 (no script, event handler, style, class, frame
  or external resource); SVG and Markdown become such HTML; other script-bearing MIME types are dropped.
  The learner's own Markdown cells are cleaned alike. Only the grader's notes cell (the first, inserted
  by `record.WriteGradingNotes`) carries the `grader_notes` mark that the feedback template frames.
"""

from __future__ import annotations

import base64
import json

import nh3
from nbconvert.filters.markdown import markdown2html_mistune
from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer

from grading import cell_metadata
from grading.grader.record import NOTES_CELL_ID, NOTES_MARK, record_of

TRUNCATED = "\n… [output truncated by the grader: {dropped:,} more bytes]\n"


class StderrIsNotAFailure(NbGraderPreprocessor):
    def preprocess_cell(self, cell: NotebookNode, resources: dict, index: int) -> tuple[NotebookNode, dict]:
        if cell_metadata.is_graded(cell):
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


def _rich_size(output: NotebookNode) -> int:
    rich = [value for key, value in output.get("data", {}).items() if key != "text/plain"]
    return sum(map(_size, rich)) + (_size(dict(output["metadata"])) if output.get("metadata") else 0)


class LimitOutputBytes(NbGraderPreprocessor):
    max_bytes = Integer(100_000, help="Bytes of text output kept per cell.").tag(config=True)
    max_rich_bytes = Integer(3_000_000, help="Bytes of every other MIME type (HTML, images, ...) and output metadata kept per cell.").tag(config=True)

    def _limit_cell(self, cell: NotebookNode) -> bool:
        """Cut the cell's outputs to the budgets; True when something was cut."""
        cut = False
        text_budget, rich_budget = self.max_bytes, self.max_rich_bytes
        for output in cell.get("outputs", []):
            rich = _rich_size(output)
            if rich > rich_budget:
                output["data"] = {"text/plain": f"[a {rich:,}-byte rich output, removed by the grader]"}
                output["metadata"] = {}
                cut = True
            else:
                rich_budget -= rich
            for owner, key in _text_fields(output):
                value = owner[key]
                text = "".join(value) if isinstance(value, list) else value
                if not isinstance(text, str):
                    text = json.dumps(text)
                size = len(text.encode("utf-8", errors="replace"))
                if size > text_budget:
                    kept = text.encode("utf-8", errors="replace")[:text_budget].decode("utf-8", errors="ignore")
                    owner[key] = kept + TRUNCATED.format(dropped=size - len(kept.encode("utf-8")))
                    cut = True
                text_budget = max(0, text_budget - size)
        return cut

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        truncated = [index for index, cell in enumerate(nb.cells) if self._limit_cell(cell)]
        if truncated:
            record_of(resources).output_notes.append(
                f"The output of cell(s) {', '.join(map(str, truncated))} was truncated: the grader keeps {self.max_bytes:,} bytes "
                f"of text and {self.max_rich_bytes:,} bytes of rich output per cell.")
        return nb, resources


# The lesson's math, which the feedback writes as MathML (grading/grader/offline_math.py).
_MATHML = {"math", "mi", "mn", "mo", "ms", "mrow", "msup", "msub", "msubsup", "mfrac", "msqrt", "mroot", "mtext", "mspace", "mover",
           "munder", "munderover", "mtable", "mtr", "mtd", "mstyle", "mpadded", "menclose", "mphantom", "semantics", "annotation"}
_MATHML_ATTRIBUTES = {"display", "mathvariant", "stretchy", "fence", "separator", "lspace", "rspace", "columnalign", "accent", "encoding"}
_TAGS = nh3.ALLOWED_TAGS | _MATHML
_ATTRIBUTES = {**nh3.ALLOWED_ATTRIBUTES, **{tag: _MATHML_ATTRIBUTES for tag in _MATHML}}
# MIME types a browser shows without running anything once cleaned; every other one is dropped.
_IMAGES = ("image/png", "image/jpeg", "image/gif")


def _only_data_urls(element: str, attribute: str, value: str) -> str | None:
    """Links point nowhere and images only at data: URLs: opening a page loads nothing from anywhere."""
    if attribute in ("href", "src", "cite", "longdesc") and not value.startswith("data:image/"):
        return None
    return value


def clean_html(html: str) -> str:
    """`html` with only inert markup left: no script, handler, style, class, frame, form or external URL."""
    return nh3.clean(html, tags=_TAGS, attributes=_ATTRIBUTES, attribute_filter=_only_data_urls, url_schemes={"data"}, link_rel=None)


def markdown_to_clean_html(source: str) -> str:
    """The exporters' `markdown2html` filter (nbgrader_config.py): a Markdown cell's HTML, cleaned as outputs are."""
    return clean_html(markdown2html_mistune(source))


def _joined(value: object) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def safe_bundle(data: dict) -> dict:
    """A display's MIME bundle with what a browser would run removed (see the module's docstring)."""
    safe = {key: data[key] for key in ("text/plain", *_IMAGES) if key in data}
    html = [clean_html(_joined(data["text/html"]))] if "text/html" in data else []
    if "text/markdown" in data:
        html.append(markdown_to_clean_html(_joined(data["text/markdown"])))
    if "image/svg+xml" in data:  # an SVG drawn as an image runs no script
        encoded = base64.b64encode(_joined(data["image/svg+xml"]).encode()).decode()
        html.append(f'<img src="data:image/svg+xml;base64,{encoded}">')
    if html:
        safe["text/html"] = "\n".join(html)
    dropped = sorted(set(data) - set(safe) - {"text/html", "text/markdown", "image/svg+xml"})
    if dropped and "text/plain" not in safe:
        safe["text/plain"] = f"[a {', '.join(dropped)} output, not shown by the grader]"
    return safe


class SanitizeOutputs(NbGraderPreprocessor):
    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        for index, cell in enumerate(nb.cells):
            metadata = cell.setdefault("metadata", {})
            own = metadata.get(cell_metadata.COURSE, {})
            is_notes = index == 0 and cell.get("id") == NOTES_CELL_ID and cell.cell_type == "markdown"
            own.pop(NOTES_MARK, None)
            if is_notes:
                metadata.setdefault(cell_metadata.COURSE, {})[NOTES_MARK] = True
                continue
            if cell.get("id") == NOTES_CELL_ID:
                cell["id"] = f"learner-{index}"
            if cell.cell_type == "markdown" and not cell_metadata.is_locked(cell):
                cell.source = clean_html(cell.source)
                cell.pop("attachments", None)
            for output in cell.get("outputs", []):
                if "data" in output:
                    output["data"] = safe_bundle(output["data"])
        return nb, resources
