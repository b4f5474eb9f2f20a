"""The course's demonstrations (plots, dashboards, printed results): which cells they are, and what names they bind.

A demonstration cell scores nothing, and the source marks each one (`# %% [demo]`), hence the release. The
grader need not run one provided that the cell is exactly the released demonstration (grade_id, source and
mark from the release: a submission's own metadata is never trusted) and that nothing else reads what it
binds: the course's other cells never do (project_tests/test_demonstrations.py), and the learner's own code
is checked here with Python's `symtable`; code that reads globals by name at run time (`globals()`, `eval`,
IPython magics) counts as reading every one, and then every demonstration runs.

`SkipDemonstrations` gives the cells `skippable` finds safe nbclient's own `skip-execution` tag and a
one-line output saying so; the tag is the grader's and is removed from every other cell.
"""

from __future__ import annotations

import ast
import symtable
from collections.abc import Iterable

import nbformat
from nbclient import NotebookClient
from nbformat import NotebookNode

from grading import cell_metadata
from grading.grader import integrity
from grading.grader.course import CoursePreprocessor
from grading.grader.record import record_of

# Ways to read a global by name at run time, which no static reading of the code can follow: the integrity
# scan's dynamic names, and the namespaces and frames they reach. IPython's magics and shell escapes become
# `get_ipython()` calls once transformed.
DYNAMIC = frozenset(integrity.DYNAMIC) | {
    "__builtins__", "__dict__", "__globals__", "__main__", "__name__", "builtins", "f_globals", "f_locals", "get_ipython", "locals", "modules", "user_global_ns", "user_ns", "vars",
}


def is_marked(cell: NotebookNode) -> bool:
    return cell_metadata.is_demonstration(cell)


def grade_id(cell: NotebookNode) -> str | None:
    return cell_metadata.grade_id(cell)


def _reachable(source: str) -> ast.Module | None:
    """The cell as the kernel runs it (IPython's magics and `!cmd` turned into Python), without the
    statements that follow a `return`, `raise`, `break` or `continue` in their block, which never run
    (the exercise stubs' `return ...` after `raise NotImplementedError()`); None if it is not valid Python."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        tree = ast.parse(TransformerManager().transform_cell(source))
    except (SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        for block in (getattr(node, name, None) for name in ("body", "orelse", "finalbody")):
            if isinstance(block, list):
                end = next((i for i, statement in enumerate(block) if isinstance(statement, (ast.Return, ast.Raise, ast.Break, ast.Continue))), None)
                del block[(len(block) if end is None else end + 1):]
    return tree


def _tables(table: symtable.SymbolTable) -> Iterable[symtable.SymbolTable]:
    yield table
    for child in table.get_children():
        yield from _tables(child)


def bound_and_read(source: str) -> tuple[set[str], set[str]]:
    """(global names the cell binds, global names it reads), as Python resolves them; a cell that is not
    valid Python binds and reads nothing (the kernel cannot run it either)."""
    tree = _reachable(source)
    return (set(), set()) if tree is None else _bound_and_read(tree)


def _bound_and_read(tree: ast.Module) -> tuple[set[str], set[str]]:
    top = symtable.symtable(ast.unparse(tree), "<cell>", "exec")
    bound: set[str] = set()
    read: set[str] = set()
    for table in _tables(top):
        is_module = table.get_type() == "module"
        for symbol in table.get_symbols():
            name = symbol.get_name()
            at_module_level = is_module or symbol.is_declared_global() or (symbol.is_global() and not symbol.is_local())
            if not at_module_level:
                continue
            if symbol.is_assigned() or symbol.is_imported():
                bound.add(name)
            if symbol.is_referenced():
                read.add(name)
    return bound, read


def _words(node: ast.AST) -> set[str]:
    """The identifiers and strings a node names: `x`, `.x`, `import x.y`, `"x"`."""
    if isinstance(node, ast.Name):
        return {node.id}
    if isinstance(node, ast.Attribute):
        return {node.attr}
    if isinstance(node, ast.alias):
        return set(node.name.split("."))
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    return set()


def _reads_dynamically(tree: ast.Module) -> bool:
    """Whether the cell may read globals by a name computed at run time (see `DYNAMIC`)."""
    return any(DYNAMIC & _words(node) for node in ast.walk(tree))


def skippable(nb: NotebookNode, release: NotebookNode) -> list[int]:
    """Indices of the cells of `nb` (a submission, normalized) that the grader need not run."""
    released = {grade_id(cell): cell for cell in release.cells if grade_id(cell)}
    locked = {gid for gid, cell in released.items() if not cell_metadata.is_solution(cell)}

    def is_release_copy(cell: NotebookNode) -> bool:
        gid = grade_id(cell)
        return gid in locked and cell.source == released[gid].source

    demos = [i for i, cell in enumerate(nb.cells) if is_release_copy(cell) and is_marked(released[grade_id(cell)])]
    # The learner's solution and added cells, and the graded cells (nbgrader put their hidden tests back).
    learner_code = [_reachable(cell.source) for cell in nb.cells if cell.cell_type == "code" and not is_release_copy(cell)]
    demo_bound = set().union(*(bound_and_read(nb.cells[i].source)[0] for i in demos))
    for tree in learner_code:
        if tree is not None and (_reads_dynamically(tree) or _bound_and_read(tree)[1] & demo_bound):
            return []
    return demos


SKIP_TAG = NotebookClient.skip_cells_with_tag.default_value
NOT_RUN = "[not run when grading: a demonstration, which scores nothing]\n"


class SkipDemonstrations(CoursePreprocessor):
    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        skipped = set(skippable(nb, self.released_notebook(resources)))
        record_of(resources).demonstrations_skipped += [grade_id(nb.cells[index]) or str(index) for index in sorted(skipped)]
        for index, cell in enumerate(nb.cells):
            tags = [tag for tag in cell.get("metadata", {}).get("tags", []) if tag != SKIP_TAG]
            if index in skipped:
                tags.append(SKIP_TAG)
                cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=NOT_RUN)]
                cell.execution_count = None
            if tags or "tags" in cell.get("metadata", {}):
                cell.metadata["tags"] = tags
        return nb, resources
