"""Feedback preprocessor: the markdown cells' TeX becomes MathML, which browsers draw without any script.

nbgrader's feedback page typesets `$...$` with MathJax from a CDN: offline (a workshop without internet) the
learner reads raw TeX, and JupyterLab's HTML viewer runs no script at all until the page is trusted. Math
written as MathML needs neither. Code spans and fenced code keep their dollars; TeX that latex2mathml cannot
convert stays as it was, for MathJax where it loads.
"""

from __future__ import annotations

import re

from latex2mathml.converter import convert
from nbgrader.preprocessors import NbGraderPreprocessor

# Fenced blocks and code spans first, so that the dollars inside them are matched as code, not as math.
_CODE_OR_MATH = re.compile(r"(?P<code>```.*?```|`[^`\n]*`)|\$\$(?P<display>.+?)\$\$|(?<![\\$])\$(?P<inline>[^$\n]+?)\$", re.DOTALL)


def _to_mathml(match: re.Match[str]) -> str:
    if match.group("code") is not None:
        return match.group(0)
    display = match.group("display") is not None
    try:
        return convert(match.group("display" if display else "inline"), display="block" if display else "inline")
    except Exception:  # noqa: BLE001 (malformed TeX: latex2mathml's dozen error classes share no base but Exception)
        return match.group(0)


def tex_to_mathml(markdown: str) -> str:
    """`markdown` with each `$...$` and `$$...$$` outside code written as a MathML element."""
    return _CODE_OR_MATH.sub(_to_mathml, markdown)


class MathAsMathML(NbGraderPreprocessor):
    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "markdown":
            cell.source = tex_to_mathml(cell.source)
        return cell, resources
