"""Generate the course notebooks from their single source, or check that the committed ones are fresh.

    python notebooks/build.py           # write every generated notebook
    python notebooks/build.py --check   # exit 1, naming the stale files, if any differs from its source

The source, notebooks/source/<name>.py, is a Python file of cells: `# %% [kind key=value ...]` starts a
cell, of a kind in KINDS (docs/development.md describes each kind and its options; a `graded` cell is
generated from its exercise's row of the exercise table; `only=learner` / `only=graded` keep a cell
out of the graded release or out of the learner notebooks). Each source yields
notebooks/<name>_solutions.ipynb (solution regions kept, markers removed), notebooks/<name>_exercises.ipynb
(each solution region replaced by nbgrader's stub, as generate_assignment does for the release) and
nbgrader/source/<name>/<name>.ipynb (markers kept, with nbgrader's cell metadata: notebooks/nbgrader_cells.py).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader_cells import build_nbgrader_notebook  # a sibling module: this script's folder is on sys.path

from grading import cell_metadata

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "notebooks" / "source"
_CELL_START = re.compile(r"^# %%(?: \[(?P<kind>\w+)(?P<options>(?: \w+=[^\s\]]+)*)\])?\s*$")
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
# What nbgrader's generate_assignment puts in place of a solution region (its default code stub).
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
KINDS = ("code", "demo", "markdown", "exercise", "check", "graded")


@dataclass
class SourceCell:
    kind: str
    lines: list[str]
    options: dict[str, str] = field(default_factory=dict)
    line_number: int = 0

    @property
    def text(self) -> str:
        return "\n".join(self.lines).strip("\n")


def contract_lines(dotted: str) -> list[str]:
    """The signature and docstring of a reference function or class, `solutions.MODULE.NAME`, read from its source
    file (a class's methods follow in the cell, each with its own docstring).

    Read, not imported: importing the solutions would load torch and sae_lens to write a notebook.
    """
    module, _, name = dotted.rpartition(".")
    path = ROOT / Path(*module.split(".")).with_suffix(".py")
    lines = path.read_text(encoding="utf-8").splitlines()
    for node in ast.parse("\n".join(lines)).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            docstring = node.body[0]
            if not (isinstance(docstring, ast.Expr) and isinstance(docstring.value, ast.Constant) and isinstance(docstring.value.value, str)):
                raise ValueError(f"{path}:{node.lineno}: {name} has no docstring to serve as the exercise's contract")
            first = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
            return lines[first - 1 : docstring.end_lineno]
    raise ValueError(f"{path}: no top-level function or class {name!r} for contract={dotted}")


def graded_cells(cell: SourceCell) -> list[SourceCell]:
    """A `graded` cell's exercise, as one `grader` cell per part of its row in the exercise table."""
    sys.path.insert(0, str(ROOT))
    from tests.exercises import BY_NAME

    name = cell.options.get("exercise", "")
    if name not in BY_NAME or cell.text:
        raise ValueError(f"line {cell.line_number}: a graded cell names an exercise of the table ({sorted(BY_NAME)}) and has no lines")
    row = BY_NAME[name]
    world = f", model, {row.sae_map}" if row.sae_map else ""
    return [
        SourceCell("grader", [f'tests.{row.check.__name__}({row.reference.__name__}{world}, part="{part}")'],
                   {"exercise": name, "id": f"{name}-{part}", "points": str(points)}, cell.line_number)
        for part, points in row.parts.items()
    ]


def parse(path: Path) -> list[SourceCell]:
    cells: list[SourceCell] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = _CELL_START.match(line)
        if match:
            kind = match.group("kind") or "code"
            if kind not in KINDS:
                raise ValueError(f"{path}:{number}: unknown cell kind {kind!r}; expected one of {KINDS}")
            options = dict(option.split("=", 1) for option in (match.group("options") or "").split())
            if options.get("only", "learner") not in ("learner", "graded"):
                raise ValueError(f"{path}:{number}: 'only' is 'learner' or 'graded', not {options['only']!r}")
            cells.append(SourceCell(kind, [], options, number))
        elif line.startswith("# %%"):
            raise ValueError(f"{path}:{number}: malformed cell marker {line!r}; expected '# %% [kind key=value ...]'")
        elif not cells:
            raise ValueError(f"{path}:{number}: text before the first '# %%' cell marker")
        else:
            cells[-1].lines.append(line)
    cells = [expanded for cell in cells for expanded in (graded_cells(cell) if cell.kind == "graded" else [cell])]
    for cell in cells:
        if cell.kind == "markdown":
            cell.lines = [re.sub(r"^# ?", "", line) for line in cell.lines]
        if cell.kind == "exercise" and BEGIN not in cell.text:
            raise ValueError(f"{path}:{cell.line_number}: exercise cell without a '{BEGIN}' region")
        if "contract" in cell.options:
            cell.lines = contract_lines(cell.options["contract"]) + cell.lines
    return cells


def solution_text(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if line.strip() not in (BEGIN, END))


def exercise_text(text: str) -> str:
    """Replace each solution region by nbgrader's stub (`# YOUR CODE HERE`, `raise NotImplementedError()`) at the region's indentation."""
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            inside = True
            out.extend(line[: len(line) - len(line.lstrip())] + stub for stub in STUB)
        elif stripped == END:
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"'{BEGIN}' without '{END}'")
    return "\n".join(out)


def _banner(name: str, variant: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(
        f"*Generated from `notebooks/source/{name}.py` by `make notebooks` ({variant} version): "
        "edit the source, not this file.*",
        id="generated-banner",
    )


LEARNER_NBGRADER = {
    "exercise": {"solution": True, "grade": False, "locked": False},
    "check": {"solution": False, "grade": True, "locked": False, "points": 1},
}


def build_notebook(name: str, cells: list[SourceCell], variant: str) -> nbformat.NotebookNode:
    """`variant` is "solutions" or "exercises"."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = cell_metadata.notebook_marks(name, variant)
    notebook.cells.append(_banner(name, variant))
    for index, cell in enumerate(cell for cell in cells if cell.kind != "grader"):
        if cell.options.get("only") == "graded":
            continue  # its index stays taken, so the other cells keep their ids
        cell_id = f"{cell.kind}-{index:02d}"
        if cell.kind == "markdown":
            notebook.cells.append(nbformat.v4.new_markdown_cell(cell.text, id=cell_id))
            continue
        text = cell.text
        if cell.kind == "exercise":
            text = solution_text(text) if variant == "solutions" else exercise_text(text)
        new = nbformat.v4.new_code_cell(text, id=cell_id)
        if cell.kind in LEARNER_NBGRADER:
            # With these, nbgrader's Validate button reports each check that fails, as it does for the
            # released notebook; without them it would run the notebook and always report success.
            new.metadata[cell_metadata.NBGRADER] = {"grade_id": cell_id, "schema_version": 3, **LEARNER_NBGRADER[cell.kind]}
        notebook.cells.append(new)
    return notebook


def outputs() -> dict[Path, str]:
    """Every generated file and its contents, from every source."""
    files: dict[Path, str] = {}
    for source in sorted(SOURCES.glob("*.py")):
        name, cells = source.stem, parse(source)
        for variant in ("solutions", "exercises"):
            files[ROOT / "notebooks" / f"{name}_{variant}.ipynb"] = nbformat.writes(build_notebook(name, cells, variant)) + "\n"
        files[ROOT / "nbgrader" / "source" / name / f"{name}.ipynb"] = nbformat.writes(build_nbgrader_notebook(name, cells)) + "\n"
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated notebook is stale, write nothing")
    args = parser.parse_args()
    stale = []
    for path, text in outputs().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path.relative_to(ROOT))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print("Stale generated notebooks (run `make notebooks`):", *stale, sep="\n  ")
        return 1
    print(f"{'Checked' if args.check else 'Wrote'} generated notebooks: {len(stale)} {'stale' if args.check else 'updated'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
