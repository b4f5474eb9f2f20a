"""The feedback's math is MathML (grading/grader/offline_math.py): drawn with no CDN and no script."""

from __future__ import annotations

import nbformat
import pytest
from nbconvert import HTMLExporter

from grading.grader.offline_math import MathAsMathML, tex_to_mathml


def test_inline_and_display_math_become_mathml() -> None:
    converted = tex_to_mathml(r"The Jacobian $J_{ij} = \partial y_i / \partial x_j$, and $$\sum_v w_{u \to v}$$ on its own.")
    assert "$" not in converted and converted.count("<math") == 2
    assert 'display="inline"' in converted and 'display="block"' in converted and "<msub><mi>J</mi>" in converted


@pytest.mark.parametrize(
    "markdown",
    [
        "Run `echo $HOME $PATH` in a terminal.",
        "```bash\nexport A=$HOME\necho $A\n```",
        r"It costs \$5, or \$10 with \$2 off.",
        r"Malformed TeX stays: $\frac{1}{$ and $x^$.",
    ],
)
def test_code_escaped_dollars_and_unknown_tex_stay_as_written(markdown: str) -> None:
    assert tex_to_mathml(markdown) == markdown


def test_the_feedback_page_carries_mathml_through_markdown() -> None:
    """nbconvert's markdown keeps the MathML elements whole, underscores of `\\text{seq\\_len}` included."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(r"Positions $p + \text{seq\_len} - 1$ and $p \le q$, with _emphasis_.")])
    notebook, _ = MathAsMathML().preprocess(notebook, {})
    html, _ = HTMLExporter(template_name="classic").from_notebook_node(notebook)
    assert "<mtext>seq_len</mtext>" in html and "<mo>≤</mo>" in html and "<em>emphasis</em>" in html and "$p" not in html
