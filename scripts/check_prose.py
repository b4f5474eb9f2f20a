"""`make lint`'s prose rules, after ruff: code and docs state what is, and docstrings stay short.

    python scripts/check_prose.py        # exit 1, naming each file:line, when a rule is broken

1. A docstring holds at most 15 lines: what and why; the longer reasoning goes to docs/.
2. Comments, docstrings and the docs (README.md, docs/*.md) carry no history: no "used to", "no longer",
   issue or run names, commit hashes, dates, sessions, or measured timings in milliseconds.

A true exception goes in ALLOWED below, with its reason (docs/development.md describes the rules).
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_DOCSTRING_LINES = 15
HISTORY = {
    "history: 'used to'": re.compile(r"(?<!\bis )(?<!\bare )(?<!\bbe )(?<!\bbeen )\bused to\b", re.IGNORECASE),
    "history: 'no longer'": re.compile(r"\bno longer\b", re.IGNORECASE),
    "history: a session": re.compile(r"\bthis session\b", re.IGNORECASE),
    "history: an issue number": re.compile(r"\bissue #?\d+", re.IGNORECASE),
    "history: a named run": re.compile(r"\bruns? [A-E]\b(?![-'])"),
    "history: a commit hash": re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b"),
    "history: a date": re.compile(r"\b20\d\d-\d\d-\d\d\b|\b\d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* 20\d\d\b"),
    "a measured timing (bench output, not prose)": re.compile(r"\b\d+(?:\.\d+)? ?ms\b"),
}
# (path, rule or "docstring <qualified name>") -> why the rule does not apply there.
ALLOWED: dict[tuple[str, str], str] = {
    ("scripts/check_prose.py", "history: 'used to'"): "the rules themselves name the phrases they reject",
    ("scripts/check_prose.py", "history: 'no longer'"): "the rules themselves name the phrases they reject",
    ("notebooks/source/latent_gradients.py", "history: 'no longer'"): "the learner is told to free what they no longer need",
    ("docs/development.md", "history: 'used to'"): "the rules' description names the phrases they reject",
    ("docs/development.md", "history: 'no longer'"): "the rules' description names the phrases they reject",
}


def _files(pattern: str) -> list[Path]:
    listed = subprocess.run(["git", "ls-files", pattern], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / name for name in listed if (ROOT / name).is_file()]


def _comments(source: str) -> list[tuple[int, str]]:
    try:
        return [(token.start[0], token.string) for token in tokenize.generate_tokens(io.StringIO(source).readline) if token.type == tokenize.COMMENT]
    except (tokenize.TokenError, SyntaxError):  # a file of notebook cells: its comment lines are its prose
        return [(number, line) for number, line in enumerate(source.splitlines(), 1) if line.lstrip().startswith("#")]


def _docstrings(tree: ast.AST) -> list[tuple[str, int, str]]:
    """(qualified name, first line, text) of every module, class and function docstring."""
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                docstring = ast.get_docstring(child)
                if docstring:
                    found.append((name, child.body[0].lineno, docstring))
                visit(child, f"{name}.")

    docstring = ast.get_docstring(tree) if isinstance(tree, ast.Module) else None
    if docstring:
        found.append(("<module>", 1, docstring))
    visit(tree, "")
    return found


def problems() -> list[str]:
    found = []

    def report(path: Path, line: int, rule: str, text: str) -> None:
        relative = path.relative_to(ROOT).as_posix()
        if (relative, rule) not in ALLOWED:
            found.append(f"{relative}:{line}: {rule}: {text.strip()[:120]}")

    for path in _files("*.py"):
        source = path.read_text(encoding="utf-8")
        prose = _comments(source)
        try:
            tree = ast.parse(source)
        except SyntaxError:
            tree = None  # a file of notebook cells (an exercise cell holds only a function's body)
        for name, first, docstring in _docstrings(tree) if tree else []:
            lines = docstring.splitlines()
            if len(lines) > MAX_DOCSTRING_LINES:
                report(path, first, f"docstring {name}", f"{len(lines)} lines, over {MAX_DOCSTRING_LINES}: move the reasoning to docs/")
            prose += [(first + offset, line) for offset, line in enumerate(lines)]
        for line, text in prose:
            for rule, pattern in HISTORY.items():
                if pattern.search(text):
                    report(path, line, rule, text)
    for path in [ROOT / "README.md", *_files("docs/*.md")]:
        for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for rule, pattern in HISTORY.items():
                if pattern.search(text):
                    report(path, line, rule, text)
    return found


def main() -> int:
    found = problems()
    for problem in found:
        print(problem)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
