"""The documentation points only at what exists: every link resolves, every path it names in code is a
file or folder of the repository, every `make` target it names is in the Makefile, and each reader's
page is one click from the README."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_LIMIT = 150

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
# `make TARGET`, after optional VAR=value words; not a package named make (`apt-get install make npm`).
_MAKE = re.compile(r"(?<![\w-])(?<!install )make\s+((?:[A-Z_]+=\S*\s+)*)([a-z][\w-]*)")
# The repository's own top-level folders (and one it has no more, so that a stale path fails): a code span
# starting with one of them names a repository path.
_TRACKED_TOP = ("benchmarks", "course_fixtures", "docs", "grading", "nbgrader", "notebooks", "part_utils", "project_tests", "scripts", "solutions", "tests", "workshop")
# What grading, the workshop and the notebook build write at run time: named by the docs, absent from a clone.
_WRITTEN_AT_RUN_TIME = (
    "nbgrader/release/",
    "nbgrader/submitted/",
    "nbgrader/autograded/",
    "nbgrader/feedback/",
    "nbgrader/reports/",
    "nbgrader/downloaded/",
    "nbgrader/gradebook.db",
    "nbgrader/.grading_secret",
)

_VARIABLE = re.compile(r"\b(?:LATENT_GRADIENTS|GRADING|WORKSHOP)_[A-Z][A-Z_]*[A-Z]\b")


def _code(text: str) -> list[str]:
    """The code a page shows: its fenced blocks and its inline code spans."""
    blocks = [match.group(0) for match in _FENCE.finditer(text)]
    spans = _CODE_SPAN.findall(_FENCE.sub("", text))
    return blocks + spans


def _make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    return {target for line in re.findall(r"^([\w .-]+?)\s*:(?!=)", makefile, re.MULTILINE) for target in line.split()}


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_link_resolves(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address, or an anchor on this page
        path = target.split("#", 1)[0]
        if not (page.parent / path).exists():
            broken.append(target)
    assert not broken, f"{_page_id(page)} links to files that do not exist: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_named_path_exists(page: Path) -> None:
    missing = []
    for code in _code(page.read_text(encoding="utf-8")):
        for word in re.findall(r"[\w./-]+", code):
            path = word.rstrip(".,:;")
            if not path.startswith(tuple(f"{top}/" for top in _TRACKED_TOP)) or path.startswith(_WRITTEN_AT_RUN_TIME):
                continue
            if not (ROOT / path).exists():
                missing.append(path)
    assert not missing, f"{_page_id(page)} names paths that do not exist: {sorted(set(missing))}"


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_make_target_exists(page: Path) -> None:
    targets = _make_targets()
    named = {match.group(2) for code in _code(page.read_text(encoding="utf-8")) for match in _MAKE.finditer(code)}
    assert named <= targets, f"{_page_id(page)} names make targets the Makefile does not have: {sorted(named - targets)}"


def test_make_help_lists_every_target_once() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    phony = {target for line in re.findall(r"^\.PHONY:(.*)$", makefile, re.MULTILINE) for target in line.split()}
    described = re.findall(r"^## ([\w-]+): \S", makefile, re.MULTILINE)
    assert sorted(described) == sorted(set(described)), "a target has two `## ` lines"
    assert set(described) == phony, f"every .PHONY target, and only those, has a `## TARGET: what it does` line for `make help`: {sorted(phony ^ set(described))}"
    listed = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert [line.split()[1] for line in listed.splitlines()] == described


def test_every_environment_variable_is_in_the_settings_table() -> None:
    """A variable is a quoted name in Python (`os.environ["GRADING_SECRET"]`) or an assignment in the Makefile."""
    named = set(re.findall(rf"({_VARIABLE.pattern})=", (ROOT / "Makefile").read_text(encoding="utf-8")))
    for path in [*ROOT.glob("*.py"), *(p for top in _TRACKED_TOP if (ROOT / top).is_dir() for p in (ROOT / top).rglob("*.py"))]:
        named |= set(re.findall(rf"[\"']({_VARIABLE.pattern})[\"']", path.read_text(encoding="utf-8")))
    table = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    listed = {name for row in table.splitlines() if row.startswith("| `") for name in _VARIABLE.findall(row.split(" | ")[0])}
    assert named - listed == set(), f"docs/settings.md does not list {sorted(named - listed)}"
    assert listed - named == set(), f"docs/settings.md lists variables the code does not name: {sorted(listed - named)}"


def test_the_readme_is_short_and_reaches_every_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_LIMIT, f"README.md is over {README_LIMIT} lines: the rest belongs in docs/"
    linked = {(ROOT / target.split("#", 1)[0]).resolve() for target in _LINK.findall(readme)}
    unlinked = [_page_id(page) for page in PAGES[1:] if page.resolve() not in linked]
    assert not unlinked, f"README.md does not link to {unlinked}"
