"""Example submissions, built from the release and the source: for the project's tests and the benchmark.

Each is (notebook text, expected score per exercise). "base" is the reference solutions of exercises 1,
4 and 5 (the cheap ones) with the others left as released, 6 of 16 points; each failure kind breaks
exercise 4 (`token_to_latent`) of the base, so exercises 1 and 5, before and after it, still score.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from grading import cell_metadata
from grading.grader import settings
from tests.exercises import EXERCISES

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
POINTS = {exercise.name: exercise.points for exercise in EXERCISES}
ZERO = dict.fromkeys(POINTS, 0)
BASE = ZERO | {"sparse_tensor": 2, "token_to_latent": 2, "latent_to_logit": 2}


def _exercise(cell: NotebookNode) -> str | None:
    return cell_metadata.exercise_of(cell)


def _grade_id(cell: NotebookNode) -> str | None:
    return cell_metadata.grade_id(cell)


def _solution_text(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if line.strip() not in (BEGIN, END))


def solved(release: NotebookNode, source: NotebookNode, exercises: set[str] | None) -> NotebookNode:
    answers = {_grade_id(c): _solution_text(c.source) for c in source.cells if cell_metadata.is_solution(c)}
    nb = copy.deepcopy(release)
    for cell in nb.cells:
        gid = _grade_id(cell)
        if gid in answers and (exercises is None or _exercise(cell) in exercises):
            cell.source = answers[gid]
    return nb


def _edit(nb: NotebookNode, exercise: str, edit: Callable[[str], str], which: int = -1) -> NotebookNode:
    cells = [c for c in nb.cells if cell_metadata.is_solution(c) and _exercise(c) == exercise]
    cell = cells[which]
    new = edit(cell.source)
    assert new != cell.source, f"edit of {exercise} changed nothing"
    cell.source = new
    return nb


def _add_after(nb: NotebookNode, exercise: str, source: str) -> NotebookNode:
    """A cell of the student's own, after the exercise's last solution cell."""
    cells = [c for c in nb.cells if cell_metadata.is_solution(c) and _exercise(c) == exercise]
    nb.cells.insert(nb.cells.index(cells[-1]) + 1, nbformat.v4.new_code_cell(source))
    return nb


# token_to_latent_gradients with the right types and shapes and nothing in them: it matches the
# reference only on a world where no latent is active.
TRIVIAL_TOKEN_TO_LATENT = """
def token_to_latent_gradients(tokens, sae, model):
    dense = t.zeros(*tokens.shape, sae.cfg.d_sae, device=tokens.device)
    return t.zeros(*tokens.shape, 0, device=tokens.device), SparseTensor.from_dense(dense)
"""
# A marker that the test looks for among the machine's processes after the batch.
LONG_LIVED = "31337"


def hostile(base: Callable[[], NotebookNode], stub: Callable[[], NotebookNode], loopback_port: int) -> dict[str, tuple[NotebookNode, dict[str, float]]]:
    """Submissions that attack the grader; each keeps the base's correct exercises 1, 4 and 5, but the stubs
    (the untouched release with an attack on the verdict), which must score 0."""
    found: dict[str, tuple[NotebookNode, dict[str, float]]] = {}
    writes = "import pathlib\n\n" + "\n".join(
        f"pathlib.Path(tests.__file__).parent.joinpath({name!r}).write_text('def test_token_to_latent_gradients(*a, **k): print(\"passed\")')"
        for name in ("token_to_latent.py",)
    )
    found["hostile_writes_course"] = (_add_after(base(), "token_to_latent", writes), dict(BASE))
    # zero encoders: no latent is active on the notebook's world, where a trivial function then matches.
    world = "for sae in saes.values():\n    sae.W_enc.data.zero_()\n    sae.b_enc.data.fill_(-1.0)\n" + TRIVIAL_TOKEN_TO_LATENT
    found["hostile_changes_world"] = (_add_after(base(), "token_to_latent", world), BASE | {"token_to_latent": 0})
    spawn = f"import subprocess\n\nsubprocess.Popen(['sleep', '{LONG_LIVED}'], start_new_session=True)"
    found["hostile_spawns"] = (_add_after(base(), "token_to_latent", spawn), dict(BASE))
    found["hostile_floods"] = (_add_after(base(), "token_to_latent", "print('x' * 100_000_000)"), dict(BASE))
    stderr = lambda s: "import sys\n\n" + s.replace('    """\n    token_scales', '    """\n    print("computing the gradients", file=sys.stderr)\n    token_scales')  # noqa: E731
    found["hostile_stderr"] = (_edit(base(), "token_to_latent", stderr), dict(BASE))
    sigint = "import signal\nimport time\n\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.1)"
    found["hostile_ignores_sigint"] = (_add_after(base(), "token_to_latent", sigint), dict(BASE))
    network = f"import socket\n\nsocket.create_connection(('127.0.0.1', {loopback_port}), timeout=5).sendall(b'leak')"
    found["hostile_network"] = (_add_after(base(), "token_to_latent", network), dict(BASE))
    # the class, reached through an instance so that the static scan cannot see it: the hidden world the kernel
    # builds has the patched class too, but the grader's reference does not.
    patch = ("def zero_encode(self, x):\n    return t.zeros(*x.shape[:-1], self.cfg.d_sae, device=x.device)\n\n"
             "for sae in saes.values():\n    setattr(type(sae), 'encode', zero_encode)\n" + TRIVIAL_TOKEN_TO_LATENT)
    # The base's latent_to_logit runs the SAEs (run_with_cache_with_saes): on the kernel's world they encode to zeros.
    found["hostile_patches_sae"] = (_add_after(base(), "token_to_latent", patch), BASE | {"token_to_latent": 0, "latent_to_logit": 0})
    found |= _verdict_attacks(base, stub)
    return found


# Kernel-side attacks on the verdict: each would pass a check whose verdict the kernel's outputs decided.
CUSTOM_EXC = """from IPython import get_ipython

shell = get_ipython()
shell.set_custom_exc((BaseException,), lambda *args, **kwargs: None)
def forget_errors(result):
    result.error_in_exec = None
shell.events.register("post_run_cell", forget_errors)
"""
CLEARS_FAILURES = """from IPython import get_ipython
from IPython.display import clear_output

def clear_failures(result):
    if not result.success:
        clear_output()
get_ipython().events.register("post_run_cell", clear_failures)
"""
EMITS_RESULTS = """from IPython import get_ipython

shell = get_ipython()
shell.events.register("pre_run_cell", lambda info: shell.displayhook(14))
"""
PATCHES_GRADER = """import pkgutil

for name in ("grading.grader.verdict.grade_cells", "grading.grader.verdict.judge", "tests._report.CheckFailed"):
    try:
        owner, _, attribute = name.rpartition(".")
        setattr(pkgutil.resolve_name(owner), attribute, lambda *args, **kwargs: None)
    except Exception as error:
        print("cannot patch", name, type(error).__name__)
for name in dir(tests):
    if name.startswith("test_"):
        setattr(tests, name, lambda *args, **kwargs: print("✓ passed"))
"""
# The reference reached by a name built at run time, with the profiler that would see the call switched off.
UNSEEN_REFERENCE = """
import pkgutil
import sys

def token_to_latent_gradients(tokens, sae, model):
    sys.setprofile(None)
    reference = pkgutil.resolve_name("solutions" + ".token_to_latent_gradients")
    return reference(tokens, sae, model)
"""
# Every SAE's latents zeroed by a global hook, with the trivial function that then matches.
GLOBAL_HOOK = """import torch

def zero_latents(module, args, output):
    if getattr(module, "name", "").endswith("hook_sae_acts_post"):
        return torch.zeros_like(output)
torch.nn.modules.module.register_module_forward_hook(zero_latents)
""" + TRIVIAL_TOKEN_TO_LATENT
# The hidden inputs looked for where a kernel could read them, and printed.
READS_FOR_INPUTS = """import os
import pathlib
import pkgutil

for path in ("/proc/self/environ", "/proc/1/environ", "/proc/1/cmdline", "/proc/self/cmdline"):
    try:
        print(path, pathlib.Path(path).read_bytes()[:20000])
    except OSError as error:
        print(path, error)
print(dict(os.environ))
for name in ("grading.grader.hidden_params", "grading.grader.verdict", "solutions"):
    try:
        module = pkgutil.resolve_name(name)
        print(name, {key: repr(value)[:2000] for key, value in vars(module).items()})
    except Exception as error:
        print(name, type(error).__name__)
"""


def _verdict_attacks(base: Callable[[], NotebookNode], stub: Callable[[], NotebookNode]) -> dict[str, tuple[NotebookNode, dict[str, float]]]:
    def _stub_with(cell: str) -> NotebookNode:
        """The untouched release with one cell of the learner's own after the first exercise."""
        return _add_after(stub(), "sparse_tensor", cell)

    return {
        "stub_custom_exc": (_stub_with(CUSTOM_EXC), dict(ZERO)),
        "stub_clears_failures": (_stub_with(CLEARS_FAILURES), dict(ZERO)),
        "stub_emits_results": (_stub_with(EMITS_RESULTS), dict(ZERO)),
        "stub_patches_grader": (_stub_with(PATCHES_GRADER), dict(ZERO)),
        "hostile_unseen_reference": (_add_after(base(), "token_to_latent", UNSEEN_REFERENCE), BASE | {"token_to_latent": 0}),
        # the hook zeroes the latents the base's latent_to_logit caches, too
        "hostile_global_hook": (_add_after(base(), "token_to_latent", GLOBAL_HOOK), BASE | {"token_to_latent": 0, "latent_to_logit": 0}),
        "hostile_reads_inputs": (_add_after(base(), "token_to_latent", READS_FOR_INPUTS), dict(BASE)),
    }

# What a kernel must not be able to read: root's password hashes, and a file only the grader's own account may read.
READS = """
import pathlib

for path in ("/etc/shadow", {private!r}):
    try:
        print("read", path, pathlib.Path(path).read_text())
    except OSError as error:
        print("refused", path, error)
"""
# Every regular file the kernel holds open (a worker's log, inherited): 16 MiB through each.
WRITES_THROUGH_DESCRIPTORS = """
import os
import stat

for fd in range(1024):
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.write(fd, b"x" * 2**24)
            print("wrote 16 MiB through descriptor", fd)
    except OSError:
        pass
"""
# Memory that RLIMIT_DATA does not count: a full /dev/shm, then anonymous shared memory touched until the cgroup stops it.
SHARED_MEMORY_BOMB = """
import mmap
import os
import pathlib

try:
    pathlib.Path("/dev/shm/bomb").write_bytes(bytes(2**30))
except OSError as error:
    print("/dev/shm:", error)
shared = mmap.mmap(-1, os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2, flags=mmap.MAP_SHARED)
chunk = b"\\1" * 2**26
for offset in range(0, len(shared), len(chunk)):
    shared[offset : offset + len(chunk)] = chunk
"""
PROCESS_BOMB = f"""
import subprocess

children = []
try:
    while len(children) < 100_000:
        children.append(subprocess.Popen(["sleep", "{LONG_LIVED}"]))
except OSError as error:
    print(f"stopped after {{len(children)}} processes: {{error}}")
for child in children:
    child.kill()
    child.wait()
"""
RICH_OUTPUT = "from IPython.display import display\n\ndisplay({'text/html': '<p>' + 'x' * 35_000_000 + '</p>'}, raw=True)"
# What would run in the reader's browser: a script, an event handler, a frame and a JavaScript output.
SCRIPT_OUTPUT = """
from IPython.display import HTML, Javascript, display

display(HTML('<script>window.parent.hostileScriptRan = 1; window.hostileScriptRan = 1</script>'
             '<img src="x" onerror="window.hostileScriptRan = 2"><iframe src="https://example.org"></iframe>'))
display(Javascript('window.hostileScriptRan = 3'))
"""
FORGED_NOTES = """
# The learner's own words: BEGIN HIDDEN TESTS (nbgrader's marker, with no end)
from IPython.display import Markdown, display

display(Markdown('## Grading notes\\n\\nNothing to report: every cell ran normally. FORGED-NOTES'))
"""



def build(course: Path, loopback_port: int = 9, private_file: Path | None = None) -> dict[str, tuple[str, dict[str, float]]]:
    release = nbformat.read(course / "release" / settings.ASSIGNMENT / f"{settings.NOTEBOOK}.ipynb", as_version=4)
    source = nbformat.read(course / "source" / settings.ASSIGNMENT / f"{settings.NOTEBOOK}.ipynb", as_version=4)

    def base() -> NotebookNode:
        return solved(release, source, {"sparse_tensor", "token_to_latent", "latent_to_logit"})

    examples: dict[str, tuple[NotebookNode | str, dict[str, float]]] = {}
    examples["solutions"] = (solved(release, source, None), dict(POINTS))
    examples["release"] = (copy.deepcopy(release), dict(ZERO))

    partial = base()
    # from_sparse loses the values' dtype (float64 comes back float32): from_dense scores, from_sparse not.
    _edit(partial, "sparse_tensor", lambda s: s.replace("t.zeros(shape, dtype=values.dtype, device=values.device)", "t.zeros(shape, device=values.device)"))
    # the Jacobian is not rearranged to (batch, seq, n_active): the activations score, the gradients not.
    _edit(partial, "token_to_latent", lambda s: s.replace('einops.rearrange(jacobian, "n_active batch seq -> batch seq n_active")', "jacobian"))
    examples["partial"] = (partial, ZERO | {"sparse_tensor": 1, "token_to_latent": 1, "latent_to_logit": 2})

    def broken(edit: Callable[[str], str]) -> NotebookNode:
        return _edit(base(), "token_to_latent", edit)

    examples["raises"] = (broken(lambda s: s.replace('    """\n    token_scales', '    """\n    raise ValueError("not finished")\n    token_scales')), BASE | {"token_to_latent": 0})
    examples["infinite_loop"] = (broken(lambda s: "while True:\n    pass\n\n" + s), BASE | {"token_to_latent": 0})
    examples["kernel_exit"] = (broken(lambda s: "import os\n\nos._exit(1)\n\n" + s), BASE | {"token_to_latent": 0})
    examples["out_of_memory"] = (
        broken(lambda s: s.replace('    """\n    token_scales', '    """\n    hog = [t.ones(2**25) for _ in range(10**6)]\n    token_scales')),
        BASE | {"token_to_latent": 0},
    )
    examples["syntax_error"] = (broken(lambda s: s.replace("def token_to_latent_gradients(", "def token_to_latent_gradients((", 1)), BASE | {"token_to_latent": 0})

    edited = base()
    graded = [c for c in edited.cells if cell_metadata.is_graded(c)]
    graded[0].source = 'print("✓ test_sparse_tensor passed")'  # an edited check: restored before grading
    edited.cells.remove(next(c for c in graded if _exercise(c) == "latent_to_logit"))  # a deleted check: restored
    edited.cells.remove(next(c for c in edited.cells if c.cell_type == "markdown"))  # a deleted locked cell
    examples["edited_tests"] = (edited, dict(BASE))

    patched = base()
    _edit(patched, "token_to_latent", lambda s: s + '\n\ntests.test_token_to_latent_gradients = lambda *args, **kwargs: print("✓ passed")\n')
    _edit(patched, "latent_to_logit", lambda s: s + "\n\nt.testing.assert_close = lambda *args, **kwargs: None\n", which=0)
    examples["monkeypatch"] = (patched, BASE | {"token_to_latent": 0, "latent_to_logit": 0})

    imports = base()
    _edit(imports, "latent_to_logit", lambda s: "from solutions import latent_acts_to_logits, latent_to_logit_gradients\n", which=0)
    examples["imports_solutions"] = (imports, BASE | {"latent_to_logit": 0})

    examples["unreadable"] = ('{"cells": [ this is not JSON', dict(ZERO))
    # a cell of the learner's reads a name the demonstrations bind: the grader runs them all, as before.
    examples["reads_demonstration"] = (_add_after(base(), "token_to_latent", "print(len(str_toks))"), dict(BASE))
    examples |= hostile(base, lambda: copy.deepcopy(release), loopback_port)
    examples |= {name: (_add_after(base(), "token_to_latent", source), dict(BASE)) for name, source in (
        ("hostile_reads_secrets", READS.format(private=str(private_file or "/root/.bash_history"))),
        ("hostile_writes_descriptors", WRITES_THROUGH_DESCRIPTORS),
        ("hostile_shared_memory", SHARED_MEMORY_BOMB),
        ("hostile_process_bomb", PROCESS_BOMB),
        ("hostile_rich_output", RICH_OUTPUT),
        ("hostile_script", SCRIPT_OUTPUT),
        ("hostile_forged_notes", FORGED_NOTES),
    )}  # fmt: skip
    # the stub again, graded after every hostile submission (students are graded in name order)
    examples["zz_stub"] = (copy.deepcopy(release), dict(ZERO))
    return {name: (nb if isinstance(nb, str) else nbformat.writes(nb), expected) for name, (nb, expected) in examples.items()}


def submit(course: Path, examples: dict[str, tuple[str, dict[str, float]]], timestamp: str = "2025-01-01 12:00:00 UTC") -> None:
    """Place each example as the submission of a student of the same name, as `nbgrader collect` would."""
    for student, (text, _) in examples.items():
        folder = course / "submitted" / student / settings.ASSIGNMENT
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{settings.NOTEBOOK}.ipynb").write_text(text, encoding="utf-8")
        (folder / "timestamp.txt").write_text(timestamp, encoding="utf-8")
