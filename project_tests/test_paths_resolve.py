"""Every file path and dotted name that the grading code, its configuration and the notebook builder mention
(in comments and docstrings too) resolves: a path names a file or folder of the repository, a dotted name an
importable module or an attribute of one."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted([*ROOT.glob("grading/**/*.py"), ROOT / "nbgrader" / "nbgrader_config.py", *ROOT.glob("notebooks/*.py"),
                ROOT / "tests" / "exercises.py", ROOT / "pyproject.toml", ROOT / "Makefile"])
TOP = r"(?:grading|tests|solutions|part_utils|notebooks|nbgrader|benchmarks|scripts|project_tests|workshop)"
FILE_PATH = re.compile(rf"(?<![\w/.]){TOP}/[\w/.-]*\w(?![\w<{{*])")
# Made at run time (nbgrader's folders, the workshop's npm install), or a placeholder in an example.
RUNTIME = ("nbgrader/submitted", "nbgrader/autograded", "nbgrader/feedback", "nbgrader/release", "nbgrader/reports", "workshop/node_modules",
           "scripts/x.py")
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
