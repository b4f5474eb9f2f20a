"""Feedback: what nbgrader's feedback step needs to show a submission safely.

- `ClearHiddenTestsOfChecks`: nbgrader's ClearHiddenTests, on the grader's check cells only. The learner's
  own cells are left as they are: a learner's text that mentions the hidden-test markers must not stop
  the feedback step (nbgrader raises on an unmatched marker).
- `HideHiddenTracebacks`: IPython quotes the lines around an error, hidden ones included; only
  `ename: evalue` is kept there.
- `FeedbackExporter`: nbgrader's HTML feedback page (its `feedback` template, extended by
  templates/latent_gradients_feedback) with a Content-Security-Policy that lets nothing run or load,
  and the grader's notes framed apart from the notebook's outputs. The templates' own scripts (MathJax
  from a CDN, which the MathML math does not need) are left out, so the page holds no script at all.
"""

from __future__ import annotations

import re
from pathlib import Path

from nbconvert.exporters import HTMLExporter
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor
from traitlets import Unicode

from grading import cell_metadata

TEMPLATES = Path(__file__).resolve().parent / "templates"
# Inline styles only (nbconvert's and nbgrader's CSS are inlined); images as data: URLs; nothing else.
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; form-action 'none'; base-uri 'none'"


class ClearHiddenTestsOfChecks(ClearHiddenTests):
    def preprocess_cell(self, cell, resources, cell_index):
        if not cell_metadata.is_check(cell):
            return cell, resources
        return super().preprocess_cell(cell, resources, cell_index)


class HideHiddenTracebacks(NbGraderPreprocessor):
    def preprocess_cell(self, cell, resources, index):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error" and any("grading" in line or "HIDDEN TESTS" in line for line in output.get("traceback", [])):
                output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources


class FeedbackExporter(HTMLExporter):
    content_security_policy = Unicode(CONTENT_SECURITY_POLICY, help="The feedback page's Content-Security-Policy.").tag(config=True)

    def from_notebook_node(self, nb, resources=None, **kw):
        resources = dict(resources or {}, content_security_policy=self.content_security_policy)
        html, resources = super().from_notebook_node(nb, resources, **kw)
        # Only the templates' scripts can be left: every output and Markdown cell was cleaned by nh3.
        return _TEMPLATE_SCRIPT.sub("", html), resources


_TEMPLATE_SCRIPT = re.compile(r"<script\b.*?</script>", re.DOTALL | re.IGNORECASE)
