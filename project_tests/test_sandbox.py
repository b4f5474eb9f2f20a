"""The grading kernel's sandbox on its own (grading/grader/sandbox.py): one sandboxed kernel, probed from inside.

The nbgrader end-to-end test (test_nbgrader.py) grades real hostile submissions through it; this one
says, in seconds, which wall holds.
"""

from __future__ import annotations

import json
import socket
import subprocess

import nbformat
import pytest
from nbclient import NotebookClient

from grading.grader import sandbox
from grading.grader.settings import ROOT

pytestmark = [
    pytest.mark.nbgrader,
    pytest.mark.skipif(sandbox.sandbox_problem() is not None, reason=f"no sandbox here: {sandbox.sandbox_problem()}"),
]

PROBE = '''
import json, os, pathlib, socket, subprocess
found = {}
try:
    pathlib.Path(ROOT, "written-by-a-kernel").write_text("x")
    found["wrote the repository"] = True
except OSError as error:
    found["wrote the repository"] = str(error)
found["sees the course"] = os.listdir(COURSE)
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=3)
    found["connected"] = True
except OSError as error:
    found["connected"] = str(error)
found["secret"] = os.environ.get("GRADING_SECRET")
found["uid"] = os.getuid()
found["threads"] = os.environ.get("OMP_NUM_THREADS")
subprocess.Popen(["sleep", "4242"], start_new_session=True)
print(json.dumps(found))
'''


def test_a_sandboxed_kernel_reaches_nothing(tmp_path, monkeypatch) -> None:
    course = tmp_path / "course"
    (course / "submitted" / "someone").mkdir(parents=True)
    (course / ".grading_secret").write_text("secret")
    monkeypatch.setenv("GRADING_SECRET", "the instructor's")
    monkeypatch.setenv("GRADING_THREADS", "3")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    inputs = f"ROOT, COURSE, PORT = {str(ROOT)!r}, {str(course)!r}, {listener.getsockname()[1]}\n"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(inputs + PROBE)])
    sandbox.EVENTS.clear()
    client = NotebookClient(nb, kernel_name="python3", kernel_manager_class=sandbox.SandboxedKernelManager, timeout=120)
    client.config.SandboxProvisioner.hidden_paths = [str(course)]
    client.execute()
    found = json.loads(nb.cells[0].outputs[0]["text"])
    assert "Read-only file system" in found["wrote the repository"]
    assert not (ROOT / "written-by-a-kernel").exists()
    assert found["sees the course"] == []
    assert found["connected"] is not True
    with pytest.raises(TimeoutError):
        listener.accept()
    assert found["secret"] is None and found["uid"] == 65534 and found["threads"] == "3"
    assert any("sleep 4242" in event for event in sandbox.EVENTS), sandbox.EVENTS
    assert "sleep 4242" not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
