"""Feedback preprocessor: error tracebacks that quote the hidden tests' code are cut to their message."""

from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor


class HideHiddenTracebacks(NbGraderPreprocessor):
    """IPython quotes the lines around an error, hidden ones included; keep only `ename: evalue` there."""

    def preprocess_cell(self, cell, resources, index):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error" and any("grading" in line or "HIDDEN TESTS" in line for line in output.get("traceback", [])):
                output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources
