"""Kernels forked from the template (grading/grader/kernel_template.py, grading/kernel/template.py), probed from inside.

The batch runner's workers fork each grading kernel from a sandboxed template that has done the kernels'
imports. These tests run two kernels one after the other, as a worker does, and check what the second
can find of the first, what either can reach of the template, and that a kernel which kills the template
only costs the next kernel its head start.
"""

from __future__ import annotations

import contextlib
import json
import subprocess

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from grading.grader import kernel_template, sandbox

pytestmark = [
    pytest.mark.nbgrader,
    pytest.mark.skipif(sandbox.sandbox_problem() is not None, reason=f"no sandbox here: {sandbox.sandbox_problem()}"),
    pytest.mark.skipif(not sandbox.is_root() or sandbox.limits_problem() is not None,
                       reason="kernels are forked from a template only when the grader is root and cgroups hold"),  # fmt: skip
]

FIRST = '''
import json, os, pathlib, subprocess, sys
found = {"preloaded": "sae_lens" in sys.modules, "template": os.getppid(), "uid": os.getuid()}
found["cgroup"] = open("/proc/self/cgroup").read()
for name, path in (("memory", f"/proc/{os.getppid()}/mem"), ("environment", f"/proc/{os.getppid()}/environ")):
    try:
        open(path, "rb").read(1)
        found[name] = "read"
    except OSError as error:
        found[name] = type(error).__name__
try:
    found["descriptors"] = os.listdir(f"/proc/{os.getppid()}/fd")
except OSError as error:
    found["descriptors"] = type(error).__name__
for folder in ("/tmp", "/dev/shm", "/var/tmp"):
    pathlib.Path(folder, "left-by-the-first").mkdir()
    pathlib.Path(folder, "left-by-the-first", "note").write_text("for the next submission")
    pathlib.Path(folder, "left-by-the-first").chmod(0o500)
subprocess.Popen(["sleep", "4243"], start_new_session=True)
subprocess.run(["ipcmk", "--shmem", "4096"], check=True, capture_output=True)
print(json.dumps(found))
'''

SECOND = '''
import json, os, subprocess, sys
found = {"preloaded": "sae_lens" in sys.modules, "template": os.getppid(), "uid": os.getuid()}
found["left"] = [folder for folder in ("/tmp", "/dev/shm", "/var/tmp") if os.path.exists(os.path.join(folder, "left-by-the-first"))]
found["sleeping"] = "sleep 4243" in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
found["shared memory"] = [line for line in subprocess.run(["ipcs", "-m"], capture_output=True, text=True).stdout.splitlines() if line.startswith("0x")]
print(json.dumps(found))
'''

KILLS_THE_TEMPLATE = '''
import os, signal
os.kill(os.getppid(), signal.SIGKILL)
'''


def _run(source: str, may_die: bool = False) -> tuple[dict, sandbox.SandboxedKernelManager]:
    """One kernel, as a worker's: from the template; what its cell printed, and its manager."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    client = NotebookClient(nb, kernel_name="python3", kernel_manager_class=sandbox.SandboxedKernelManager, timeout=120)
    client.config.SandboxProvisioner.kernel_template = True
    managers = []
    create = client.create_kernel_manager
    client.create_kernel_manager = lambda: managers.append(create()) or managers[-1]
    with contextlib.suppress(*((DeadKernelError,) if may_die else ())):
        client.execute()
    outputs = [o for o in nb.cells[0].outputs if o.get("name") == "stdout"]
    return (json.loads(outputs[0]["text"]) if outputs else {}), managers[0]


@pytest.fixture
def fresh_template():
    kernel_template.close()
    yield
    kernel_template.close()


def test_the_next_kernel_finds_nothing_of_the_one_before(fresh_template) -> None:
    first, manager = _run(FIRST)
    assert first["preloaded"], "the kernel did not come from the template"
    assert first["uid"] == sandbox.grader_account()[0]
    # Its own cgroup, with a kernel's limits, not the template's.
    assert f"kernel-{manager.kernel_id}" in first["cgroup"] and "template-" not in first["cgroup"], first["cgroup"]
    # The template, of the same account, is not dumpable: its memory, environment and descriptors are closed.
    assert first["memory"] == first["environment"] == first["descriptors"] == "PermissionError", first
    second, _ = _run(SECOND)
    assert second["preloaded"] and second["template"] == first["template"], "the second kernel had another template"
    assert second["left"] == [], f"the first kernel's files were left for the next one in {second['left']}"
    assert not second["sleeping"], "a process of the first kernel outlived it"
    assert second["shared memory"] == [], "the first kernel's System V shared memory was left"
    assert "sleep 4243" not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout


def test_a_kernel_that_kills_the_template_only_slows_the_next(fresh_template) -> None:
    _run(KILLS_THE_TEMPLATE, may_die=True)  # the template's sandbox, this kernel's too, goes with it
    after, _ = _run(SECOND)
    assert after.get("uid") == sandbox.grader_account()[0], after
    assert after["left"] == [] and not after["sleeping"]
