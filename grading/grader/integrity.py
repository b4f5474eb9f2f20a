"""Static integrity scan of a submission's own code, outside the student's kernel, and its nbgrader
preprocessor (`IntegrityScan`, after `NormalizeSubmission` in autograde's sanitize stage).

A finding costs the exercise it belongs to all its credit and is listed in the class summary: importing or
reaching the reference solutions; assigning to, deleting or `setattr`-ing an attribute of the checks, of
torch or of the grader, or rebinding the names the graded cells use; dynamic imports and namespace tricks
(`__import__`, `importlib`, `sys.modules`, `globals()`, `exec`, `eval`). Apart from findings, a function
whose code has the structure of a reference solution's (names aside) is listed for review
(`similar_to_references`): evidence for the instructor, not a verdict.

Student code is the solution cells and any cell the submission added (locked cells are restored from the
source); a cell belongs to the exercise of the nearest solution or graded cell above it, and cells added
above the first exercise count for all ("*").
"""

from __future__ import annotations

import ast
import difflib
import functools
from collections.abc import Iterable
from pathlib import Path

from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor

from grading import cell_metadata
from grading.grader.record import record_of

PROTECTED_MODULES = ("tests", "torch", "solutions", "grading", "part_utils", "nbgrader", "builtins", "numpy", "sae_lens", "transformer_lens")
PROTECTED_NAMES = ("tests", "grading")
DYNAMIC = {"__import__": "a dynamic import (__import__)", "exec": "exec()", "eval": "eval()", "globals": "globals()", "compile": "compile()"}


def _python(source: str) -> str:
    """IPython syntax (magics, shell escapes) as plain Python, so that it can be parsed."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 (a cell IPython cannot transform is scanned as it is)
        return source


def _root(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


class _Scanner(ast.NodeVisitor):
    def __init__(self, module_aliases: dict[str, str]):
        self.aliases = module_aliases  # local name -> module it is bound to
        self.findings: list[str] = []

    def _protected(self, node: ast.AST) -> str | None:
        root = _root(node)
        module = self.aliases.get(root or "")
        if module and module.split(".")[0] in PROTECTED_MODULES:
            return module
        return None

    def _target(self, target: ast.AST, verb: str) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._target(element, verb)
        elif isinstance(target, (ast.Attribute, ast.Subscript)):
            module = self._protected(target)
            if module:
                self.findings.append(f"{verb} `{ast.unparse(target)}` (part of {module}): that patches the checks or what they rely on")
            elif isinstance(target, ast.Subscript) and "sys.modules" in ast.unparse(target):
                self.findings.append("edits sys.modules")
        elif isinstance(target, ast.Name) and target.id in PROTECTED_NAMES:
            self.findings.append(f"rebinds `{target.id}`, the name the graded cells use")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            top = alias.name.split(".")[0]
            if top in ("solutions", "grading", "importlib"):
                self.findings.append(f"imports {alias.name}" + (" (the reference solutions)" if top == "solutions" else ""))
            self.aliases[alias.asname or top] = alias.name if alias.asname else top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        top = module.split(".")[0]
        if top in ("solutions", "grading", "importlib") or any(a.name == "solutions" for a in node.names):
            self.findings.append(f"imports from {module or '.'}" + (" (the reference solutions)" if "solutions" in (module, *[a.name for a in node.names]) else ""))
        for alias in node.names:
            self.aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
            if (alias.asname or alias.name) in PROTECTED_NAMES:
                self.findings.append(f"rebinds `{alias.asname or alias.name}`, the name the graded cells use")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr == "solutions":
            self.findings.append(f"reaches the reference solutions through `{ast.unparse(node)}`")
        elif node.attr == "modules" and _root(node) == "sys":
            self.findings.append("uses sys.modules")
        elif node.attr in ("import_module", "reload") and _root(node) in ("importlib",):
            self.findings.append(f"uses importlib.{node.attr}")
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in DYNAMIC and isinstance(node.ctx, ast.Load):
            self.findings.append(f"uses {DYNAMIC[node.id]}")

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr") and node.args:
            module = self._protected(node.args[0])
            if module or (isinstance(node.args[0], ast.Name) and node.args[0].id in PROTECTED_MODULES):
                self.findings.append(f"calls {node.func.id} on `{ast.unparse(node.args[0])}`: that patches the checks or what they rely on")
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._target(target, "assigns to")
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._target(node.target, "assigns to")
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._target(node.target, "assigns to")
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._target(target, "deletes")
        self.generic_visit(node)

    def visit_For(self, node: ast.For) -> None:
        self._target(node.target, "assigns to")
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        for name in node.names:
            if name in PROTECTED_NAMES:
                self.findings.append(f"declares `global {name}`")


def scan_source(source: str, module_aliases: dict[str, str] | None = None) -> list[str]:
    """Findings in one cell of code (empty if clean, or if it does not parse: it will fail when run)."""
    try:
        tree = ast.parse(_python(source))
    except SyntaxError:
        return []
    scanner = _Scanner(dict(module_aliases or {}))
    scanner.visit(tree)
    return list(dict.fromkeys(scanner.findings))


def module_aliases(sources: Iterable[str]) -> dict[str, str]:
    """Names bound to modules by the notebook's own (locked) imports: `t` -> torch, `tests` -> tests, ..."""
    aliases: dict[str, str] = {}
    for source in sources:
        try:
            tree = ast.parse(_python(source))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def scan_cells(cells: list[tuple[str, str]], locked_sources: Iterable[str]) -> dict[str, list[str]]:
    """`cells`: (exercise, source) of each student-written cell. Returns {exercise: findings}."""
    aliases = module_aliases(locked_sources)
    flags: dict[str, list[str]] = {}
    for exercise, source in cells:
        for finding in scan_source(source, aliases):
            flags.setdefault(exercise, [])
            if finding not in flags[exercise]:
                flags[exercise].append(finding)
    return flags


# A function is listed for review when this share of its structure matches a reference's, and it is big
# enough (in AST nodes) for a match not to follow from the contract alone.
SIMILAR = 0.92
MIN_NODES = 60


def _structure(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """The function's code as node kinds, attribute names and constants: its variables' names and docstring left out."""
    body = function.body[1:] if function.body and isinstance(function.body[0], ast.Expr) and isinstance(function.body[0].value, ast.Constant) else function.body
    found = []
    for node in ast.walk(ast.Module(body=body, type_ignores=[])):
        if isinstance(node, ast.Attribute):
            found.append(f"attribute:{node.attr}")
        elif isinstance(node, ast.Constant):
            found.append(f"constant:{node.value!r}"[:40])
        elif not isinstance(node, (ast.Load, ast.Store, ast.Name)):
            found.append(type(node).__name__)
    return found


def _functions(tree: ast.AST) -> Iterable[ast.FunctionDef | ast.AsyncFunctionDef]:
    return (node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)))


@functools.lru_cache(maxsize=1)
def _reference_structures() -> tuple[tuple[str, tuple[str, ...]], ...]:
    import solutions

    found = []
    for path in sorted(Path(solutions.__file__).parent.glob("*.py")):
        for function in _functions(ast.parse(path.read_text(encoding="utf-8"))):
            structure = _structure(function)
            if len(structure) >= MIN_NODES:
                found.append((f"{path.stem}.{function.name}", tuple(structure)))
    return tuple(found)


def similar_to_references(cells: list[tuple[str, str]]) -> dict[str, list[str]]:
    """`cells`: (exercise, source) of each student-written cell. Returns {exercise: notes for review}."""
    review: dict[str, list[str]] = {}
    for exercise, source in cells:
        try:
            tree = ast.parse(_python(source))
        except SyntaxError:
            continue
        for function in _functions(tree):
            structure = _structure(function)
            if len(structure) < MIN_NODES:
                continue
            for name, reference in _reference_structures():
                matcher = difflib.SequenceMatcher(None, structure, reference, autojunk=False)
                # the quick ratios bound the ratio from above: most pairs stop there
                if matcher.real_quick_ratio() >= SIMILAR and matcher.quick_ratio() >= SIMILAR and (ratio := matcher.ratio()) >= SIMILAR:
                    review.setdefault(exercise, []).append(
                        f"`{function.name}` has the structure of the reference solution's `{name}` ({ratio:.0%} alike, names aside)")
                    break
    return review


class IntegrityScan(NbGraderPreprocessor):
    """nbgrader preprocessor (after `NormalizeSubmission`): the scan's findings into the grading record.

    `RobustExecute` turns them into an IntegrityViolation error in each graded cell of a flagged exercise; the
    functions that closely copy a reference go to the run report, for the instructor's review.
    """

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        record = record_of(resources)
        locked = [c.source for c in nb.cells if c.cell_type == "code" and cell_metadata.nbgrader_marks(c) and not cell_metadata.is_solution(c)]
        own_code, record.own_code = record.own_code, []
        record.flags = scan_cells(own_code, locked)
        record.review = similar_to_references(own_code)
        return nb, resources
