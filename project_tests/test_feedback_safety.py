"""What a submission displays cannot attack the one who reads it (grading/grader/outputs.py, feedback.py).

A notebook with hostile outputs goes through the autograde stage's output preprocessors and nbgrader's
feedback exporter as the course configures them; the nbgrader end-to-end test grades such submissions for real.
"""

from __future__ import annotations

import nbformat
from nbgrader.preprocessors import ClearHiddenTests
from traitlets.config import Config, PyFileConfigLoader

from grading import cell_metadata
from grading.grader.feedback import CONTENT_SECURITY_POLICY, ClearHiddenTestsOfChecks, FeedbackExporter
from grading.grader.offline_math import MathAsMathML
from grading.grader.outputs import LimitOutputBytes, SanitizeOutputs
from grading.grader.record import NOTES_CELL_ID, NOTES_MARK
from grading.grader.settings import ROOT

HOSTILE_HTML = '<b id="x">bold</b><script>window.pwned = 1</script><img src="x" onerror="window.pwned = 2"><iframe src="https://example.org"></iframe><p style="color:red" class="lg-grader-notes">styled</p>'


def _display(data: dict) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("display_data", data=data)


def _hostile_notebook() -> nbformat.NotebookNode:
    notes = nbformat.v4.new_markdown_cell("## Grading notes\n\n- the grader's own", id=NOTES_CELL_ID)
    forged = nbformat.v4.new_markdown_cell("## Grading notes\n\nNothing to report <script>window.pwned = 3</script>",
                                           metadata={cell_metadata.COURSE: {NOTES_MARK: True}})  # fmt: skip
    code = nbformat.v4.new_code_cell("display(...)")
    code.outputs = [_display({"text/html": HOSTILE_HTML, "text/plain": "html"}), _display({"application/javascript": "window.pwned = 4"}),
                    _display({"image/svg+xml": '<svg xmlns="http://www.w3.org/2000/svg"><script>window.pwned = 5</script></svg>'}),
                    _display({"text/markdown": "**md** <script>window.pwned = 6</script>"})]  # fmt: skip
    rich = nbformat.v4.new_code_cell("for _ in range(12): display(HTML('x' * 3_000_000))")
    rich.outputs = [_display({"text/html": "x" * 2_900_000}) for _ in range(12)]
    return nbformat.v4.new_notebook(cells=[notes, forged, code, rich, nbformat.v4.new_markdown_cell(r"Math $J_{ij} \le 1$.")])


def _feedback_config() -> Config:
    return PyFileConfigLoader("nbgrader_config.py", path=str(ROOT / "nbgrader")).load_config()


def test_outputs_are_cleaned_capped_and_only_the_graders_notes_are_marked() -> None:
    nb, _ = LimitOutputBytes().preprocess(_hostile_notebook(), {})
    nb, _ = SanitizeOutputs().preprocess(nb, {})
    assert cell_metadata.course_marks(nb.cells[0])[NOTES_MARK] is True
    assert NOTES_MARK not in cell_metadata.course_marks(nb.cells[1])
    assert "script" not in nb.cells[1].source
    text = nbformat.writes(nb)
    assert "<script" not in text and "onerror" not in text and "<iframe" not in text and '"application/javascript":' not in text
    assert len(text.encode()) < 3_500_000 + 200_000  # twelve outputs of 2.9 MB share one cell's 3 MB


def test_the_feedback_page_runs_and_loads_nothing() -> None:
    nb, _ = LimitOutputBytes().preprocess(_hostile_notebook(), {})
    nb, _ = SanitizeOutputs().preprocess(nb, {})
    nb, _ = MathAsMathML().preprocess(nb, {})
    config = _feedback_config()
    html, _ = FeedbackExporter(config=config).from_notebook_node(nb, {"nbgrader": {"notebook": "n", "score": 0, "max_score": 1, "late_penalty": 0}})
    head = html[html.index("<head>") : html.index("</head>")]
    assert 'http-equiv="Content-Security-Policy"' in head and f'content="{CONTENT_SECURITY_POLICY}"' in head
    assert head.index("Content-Security-Policy") < head.index("<style")  # before anything it governs
    assert "<script" not in html.lower() and "onerror" not in html and "<iframe" not in html
    assert html.count('<section class="lg-grader-notes">') == 1
    assert "<math" in html and "<b>bold</b>" in html


def test_a_learner_cell_with_the_hidden_test_marker_is_left_alone() -> None:
    learner = nbformat.v4.new_code_cell("# ### BEGIN HIDDEN TESTS, said the learner", metadata={"nbgrader": {"solution": True, "grade": False, "grade_id": "s"}})
    check = nbformat.v4.new_code_cell("visible()\n### BEGIN HIDDEN TESTS\nhidden()\n### END HIDDEN TESTS",
                                      metadata={"nbgrader": {"grade": True, "solution": False, "grade_id": "c", "points": 1}})  # fmt: skip
    nb = nbformat.v4.new_notebook(cells=[learner, check])
    nb, _ = ClearHiddenTestsOfChecks().preprocess(nb, {})
    assert nb.cells[0].source.startswith("# ### BEGIN HIDDEN TESTS") and nb.cells[1].source == "visible()"
    try:
        ClearHiddenTests().preprocess(nbformat.v4.new_notebook(cells=[learner]), {})
    except RuntimeError:
        pass  # nbgrader's own raises on the learner's text: the reason for the subclass
