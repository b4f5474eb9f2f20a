"""Every file path and dotted name that the repository's code and configuration mention (in comments and
docstrings too) resolves: a path names a file or folder of the repository, a dotted name an importable module
or an attribute of one. The docs' links are test_docs.py's."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CODE_FOLDERS = ("grading", "nbgrader", "notebooks", "tests", "solutions", "part_utils", "workshop", "scripts", "course_fixtures", "project_tests")
CODE_SUFFIXES = {".py", ".j2", ".toml", ".yml", ".yaml", ".sh", ".js", ".html", ".cfg"}
# Generated or fetched, not written: the notebooks (checked against their source), npm's packages.
NOT_WRITTEN = ("nbgrader/source", "nbgrader/release", "workshop/node_modules")
FILES = sorted(
    path
    for path in [*(p for folder in CODE_FOLDERS for p in (ROOT / folder).rglob("*") if p.suffix in CODE_SUFFIXES),
                 ROOT / ".ci" / "run", ROOT / "Makefile", ROOT / "pyproject.toml", ROOT / "environment.yml", ROOT / "jupyter_lab_config.py"]
    if path.is_file() and "__pycache__" not in path.parts and not str(path.relative_to(ROOT)).startswith(NOT_WRITTEN)
)
TOP = r"(?:grading|tests|solutions|part_utils|notebooks|nbgrader|benchmarks|scripts|project_tests|workshop)"
FILE_PATH = re.compile(rf"(?<![\w/.]){TOP}/[\w/.-]*\w(?![\w<{{*])")
# Made at run time (nbgrader's folders, the workshop's npm install), or a placeholder in an example.
RUNTIME = ("nbgrader/submitted", "nbgrader/autograded", "nbgrader/feedback", "nbgrader/release", "nbgrader/reports", "nbgrader/downloaded",
           "nbgrader/gradebook.db", "nbgrader/.grading_secret", "workshop/node_modules", "scripts/x.py", "scripts/NAME.py")
DOTTED = re.compile(r"(?<![\w/.])(?:grading|solutions|part_utils)(?:\.[A-Za-z_]\w*)+(?![\w<{*(])")


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_mentioned_path_and_name_resolves(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    missing = [found for found in dict.fromkeys(FILE_PATH.findall(text))
               if not (ROOT / found.rstrip(".")).exists() and not found.startswith(RUNTIME)]
    missing += [found for found in dict.fromkeys(DOTTED.findall(text)) if not _resolves(found) and not any(part.isupper() for part in found.split("."))]
    assert not missing, f"{path.relative_to(ROOT)} names what does not exist: {missing}"
