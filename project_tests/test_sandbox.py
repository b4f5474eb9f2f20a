"""The grading kernel's sandbox on its own (grading/grader/sandbox.py): one sandboxed kernel, probed from inside.

The nbgrader end-to-end test (test_nbgrader.py) grades real hostile submissions through it; this one
says, in seconds, which wall holds. The cgroup code is also run on fake v1 and v2 hierarchies, so that
both paths are checked whichever one this host has.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from grading.grader import sandbox, settings
from grading.grader.settings import ROOT

needs_sandbox = pytest.mark.skipif(sandbox.sandbox_problem() is not None, reason=f"no sandbox here: {sandbox.sandbox_problem()}")

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
for name, path in (("shadow", "/etc/shadow"), ("private", PRIVATE)):
    try:
        found[name] = pathlib.Path(path).read_text()
    except OSError as error:
        found[name] = str(error)
found["secret"] = os.environ.get("GRADING_SECRET")
found["uid"] = os.getuid()
found["uid_map"] = [line.split() for line in open("/proc/self/uid_map")]
found["threads"] = os.environ.get("OMP_NUM_THREADS")
found["fds"] = {fd: os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{fd}")}
found["tmpfs"] = {path: os.statvfs(path).f_blocks * os.statvfs(path).f_frsize for path in ("/dev/shm", "/var/tmp")}
try:
    pathlib.Path("/dev/shm/fill").write_bytes(b"x" * (TMPFS_BYTES + 2**20))
    found["filled /dev/shm"] = True
except OSError as error:
    found["filled /dev/shm"] = str(error)
pathlib.Path("/dev/shm/fill").unlink(missing_ok=True)
subprocess.Popen(["sleep", "4242"], start_new_session=True)
print(json.dumps(found))
'''


def _host_uid(uid: int, uid_map: list[list[str]]) -> int:
    """The host's user id of `uid` seen through a /proc/<pid>/uid_map."""
    for inside, outside, count in ((int(a), int(b), int(c)) for a, b, c in uid_map):
        if inside <= uid < inside + count:
            return outside + uid - inside
    raise AssertionError(f"{uid} is not mapped: {uid_map}")


@pytest.mark.nbgrader
@needs_sandbox
def test_a_sandboxed_kernel_reaches_nothing(tmp_path, monkeypatch) -> None:
    course = tmp_path / "course"
    (course / "submitted" / "someone").mkdir(parents=True)
    (course / ".grading_secret").write_text("secret")
    (ROOT / "build").mkdir(exist_ok=True)
    private = tempfile.NamedTemporaryFile(dir=ROOT / "build", prefix="private-")  # 0600, of the account that grades
    Path(private.name).write_text("the grader's own")
    monkeypatch.setenv("GRADING_SECRET", "the instructor's")
    monkeypatch.setenv("GRADING_THREADS", "3")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    # A descriptor of this process that a careless launcher would hand down: the kernel must not get it.
    log = os.open(tmp_path / "worker.log", os.O_WRONLY | os.O_CREAT)
    os.set_inheritable(log, True)
    inputs = f"ROOT, COURSE, PORT, PRIVATE, TMPFS_BYTES = {str(ROOT)!r}, {str(course)!r}, {listener.getsockname()[1]}, {private.name!r}, {sandbox.TMPFS_BYTES}\n"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(inputs + PROBE)])
    client = NotebookClient(nb, kernel_name="python3", kernel_manager_class=sandbox.SandboxedKernelManager, timeout=120)
    client.config.SandboxProvisioner.hidden_paths = [str(course)]
    managers = []
    create = client.create_kernel_manager
    client.create_kernel_manager = lambda: managers.append(create()) or managers[-1]
    try:
        client.execute()
    finally:
        os.close(log)
        private.close()
    found = json.loads(nb.cells[0].outputs[0]["text"])
    assert "Read-only file system" in found["wrote the repository"]
    assert not (ROOT / "written-by-a-kernel").exists()
    assert found["sees the course"] == []
    assert found["connected"] is not True
    with pytest.raises(TimeoutError):
        listener.accept()
    assert found["secret"] is None and found["threads"] == "3"
    assert "Permission denied" in found["shadow"] and "Permission denied" in found["private"]
    assert _host_uid(found["uid"], found["uid_map"]) != 0
    if sandbox.is_root():
        assert found["uid"] == sandbox.grader_account()[0]
    # Only the kernel's own pipes, sockets and event descriptors, and /dev/null for its standard streams.
    files = {fd: target for fd, target in found["fds"].items() if target.startswith("/")}
    assert set(files.values()) <= {"/dev/null"}, files
    assert found["tmpfs"] == {"/dev/shm": sandbox.TMPFS_BYTES, "/var/tmp": sandbox.TMPFS_BYTES}
    assert "No space left" in found["filled /dev/shm"]
    (manager,) = managers
    assert any("sleep 4242" in event for event in manager.provisioner.events), manager.provisioner.events
    assert "sleep 4242" not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout


CGROUP_PROBE = '''
import os, time
pids = []
try:
    while True:
        pids.append(os.fork())
        if pids[-1] == 0:
            time.sleep(60)
            os._exit(0)
except OSError as error:
    print(len(pids), type(error).__name__)
'''


@pytest.mark.nbgrader
@needs_sandbox
@pytest.mark.skipif(sandbox.limits_problem() is not None, reason=f"cgroup limits cannot be set here: {sandbox.limits_problem()}")
def test_the_kernel_runs_in_its_cgroup_with_its_limits(monkeypatch) -> None:
    monkeypatch.setattr(sandbox, "MAX_TASKS", 64)
    seen = {}

    class Watching(sandbox.SandboxedKernelManager):
        async def _async_shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
            cgroup = self.provisioner.cgroup
            seen["folders"] = dict(cgroup.folders)
            seen["procs"] = {c: (f / "cgroup.procs").read_text().split() for c, f in cgroup.folders.items()}
            seen["limits"] = {name: (f / name).read_text().strip() for f in cgroup.folders.values()
                              for name in ("pids.max", "memory.max", "memory.limit_in_bytes") if (f / name).exists()}  # fmt: skip
            await super()._async_shutdown_kernel(now=now, restart=restart)

        shutdown_kernel = _async_shutdown_kernel

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CGROUP_PROBE)])
    NotebookClient(nb, kernel_name="python3", kernel_manager_class=Watching, timeout=120).execute()
    count, error = nb.cells[0].outputs[0]["text"].split()
    assert error == "BlockingIOError" and int(count) < 64
    assert all(seen["procs"][c] for c in ("memory", "pids")), seen
    memory = str(int(settings.MEMORY_LIMIT_GB * 2**30) + sandbox.CGROUP_HEADROOM_BYTES)
    assert seen["limits"].get("pids.max") == "64"
    assert memory in (seen["limits"].get("memory.max"), seen["limits"].get("memory.limit_in_bytes"))
    assert not any(folder.exists() for folder in seen["folders"].values())


def _fake_cgroup_tree(root: Path, version: int) -> None:
    if version == 2:
        (root / "cgroup.controllers").parent.mkdir(parents=True, exist_ok=True)
        (root / "cgroup.controllers").write_text("cpu memory pids\n")
        (root / "cgroup.subtree_control").write_text("cpu memory pids\n")
        (root / "latent-gradients").mkdir()
        (root / "latent-gradients" / "cgroup.subtree_control").write_text("")
    else:
        for controller in ("memory", "pids"):
            (root / controller / "grader").mkdir(parents=True)
            (root / controller / "cgroup.procs").write_text("")


@pytest.mark.parametrize("version", [1, 2])
def test_kernel_cgroups_on_both_hierarchies(tmp_path, monkeypatch, version: int) -> None:
    """The same limits written where each cgroup version keeps them (a fake hierarchy in plain folders)."""
    _fake_cgroup_tree(tmp_path, version)
    monkeypatch.setattr(sandbox, "CGROUP_ROOT", tmp_path)
    own = {"": "/"} if version == 2 else {"memory": "/grader", "pids": "/grader", "": "/"}
    monkeypatch.setattr(sandbox, "_own_cgroups", lambda: own)
    cgroup = sandbox.KernelCgroup.create("kernel-1", 3 * 2**30, 99)
    assert not cgroup.missing, cgroup.missing
    if version == 2:
        folder = tmp_path / "latent-gradients" / "kernel-1"
        assert cgroup.folders == {"memory": folder, "pids": folder}
        assert (folder / "memory.max").read_text() == str(3 * 2**30) and (folder / "pids.max").read_text() == "99"
    else:
        assert cgroup.folders == {c: tmp_path / c / "grader" / "kernel-1" for c in ("memory", "pids")}
        assert (cgroup.folders["memory"] / "memory.limit_in_bytes").read_text() == str(3 * 2**30)
        assert (cgroup.folders["pids"] / "pids.max").read_text() == "99"


def test_a_host_without_cgroup_controllers_is_named(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sandbox, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(sandbox, "_own_cgroups", lambda: {"": "/"})
    cgroup = sandbox.KernelCgroup.create("kernel-1", 2**30, 10)
    assert set(cgroup.missing) == {"memory", "process count"} and not cgroup.folders


def test_bwrap_caps_every_tmpfs_and_leaves_root(tmp_path) -> None:
    hidden = [str(tmp_path)]
    command = sandbox.bwrap_prefix(tmp_path / "scratch", hidden, (4242, 4243))
    tmpfs = [command[i + 1] for i, arg in enumerate(command) if arg == "--tmpfs"]
    assert "/dev/shm" in tmpfs and "/tmp" in tmpfs
    assert all(command[i - 2 : i] == ["--size", str(sandbox.TMPFS_BYTES)] for i, arg in enumerate(command) if arg == "--tmpfs" and command[i + 1] not in hidden)
    assert "--unshare-user" not in command and "--unshare-all" not in command
    assert command[command.index("setpriv") :][:5] == ["setpriv", "--reuid", "4242", "--regid", "4243"]



def test_a_checkout_the_grading_account_cannot_enter_is_named(tmp_path, monkeypatch) -> None:
    private = tmp_path / "private"
    course = private / "course"
    course.mkdir(parents=True)
    private.chmod(0o700)
    monkeypatch.setattr(sandbox, "_kernel_needs", lambda: {course})
    outsider = (4242, 4243)  # owns neither folder, so only their "other" bits count

    tmp_path.chmod(0o755)

    def closed_here() -> list:  # pytest's own folders above tmp_path are private too: not this test's business
        return [folder for folder in sandbox._closed_folders(outsider) if folder.is_relative_to(tmp_path)]

    # Under an emptied folder (/tmp) the sandbox makes the folders above a bound path itself: only the path counts.
    monkeypatch.setattr(sandbox, "emptied_folders", lambda: [tmp_path])
    assert closed_here() == []
    monkeypatch.setattr(sandbox, "emptied_folders", lambda: [])
    assert closed_here() == [private]
    course.chmod(0o711)  # enterable but not listable: Python could not import from it
    assert closed_here() == [private, course]
    private.chmod(0o755)
    course.chmod(0o755)
    assert closed_here() == []


@needs_sandbox
def test_a_checkout_deep_in_an_emptied_folder_is_reachable(tmp_path, monkeypatch) -> None:
    """A repository in /tmp/a/b/ (or in the home) is bound back into the emptied /tmp, through folders the
    kernel's account can pass (bwrap alone makes them 0700)."""
    course = tmp_path / "deep" / "course"
    course.mkdir(parents=True)
    (course / "module.py").write_text("")
    for folder in (course, course.parent, tmp_path):
        folder.chmod(0o755)
    paths = sandbox._python_and_course_paths() | {course}
    monkeypatch.setattr(sandbox, "_python_and_course_paths", lambda: paths)
    monkeypatch.setattr(sandbox, "emptied_folders", lambda: [Path(tempfile.gettempdir())])
    scratch = sandbox._scratch_folder(sandbox.grader_account())
    try:
        listed = subprocess.run([*sandbox.bwrap_prefix(scratch, [], sandbox.grader_account()), "ls", str(course)],
                                capture_output=True, text=True, timeout=60)  # fmt: skip
    finally:
        subprocess.run(["rm", "-rf", str(scratch)], check=True)
    assert listed.stdout.split() == ["module.py"], listed.stderr


SHARED_MEMORY = '''
import mmap
shared = mmap.mmap(-1, 2**30, flags=mmap.MAP_SHARED)  # RLIMIT_DATA does not count a shared mapping
for offset in range(0, len(shared), 2**24):
    shared[offset : offset + 2**24] = b"\\1" * 2**24
print("survived")
'''


@pytest.mark.nbgrader
@needs_sandbox
@pytest.mark.skipif(sandbox.limits_problem() is not None, reason=f"cgroup limits cannot be set here: {sandbox.limits_problem()}")
def test_shared_memory_past_the_limit_ends_the_kernel(monkeypatch) -> None:
    """1 GiB of anonymous shared memory against a 256 MiB cgroup: the kernel is killed, not the machine's memory."""
    monkeypatch.setattr(settings, "MEMORY_LIMIT_GB", 0.25)
    monkeypatch.setattr(sandbox, "CGROUP_HEADROOM_BYTES", 0)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SHARED_MEMORY)])
    with pytest.raises(DeadKernelError):
        NotebookClient(nb, kernel_name="python3", kernel_manager_class=sandbox.SandboxedKernelManager, timeout=120).execute()
    assert "survived" not in json.dumps(nb.cells[0].get("outputs", []))
