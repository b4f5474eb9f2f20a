"""Kernels forked from a template: one sandboxed process per grading process that has done the kernels' imports.

A batch worker (grading/grader/worker.py) grades one submission after another, each in a kernel of its
own. Most of a kernel's CPU is its imports (torch, transformer_lens, sae_lens, part_utils), the same
every time; with `SandboxProvisioner.kernel_template` the provisioner asks a template
(grading/kernel/template.py) for each kernel instead, and the template forks one that has them already.
`nbgrader autograde` by hand and formgrader, one kernel per process, start every kernel afresh.

The template runs in the kernel sandbox (grading/grader/sandbox.py: bubblewrap, the grading account,
the course hidden) in a cgroup of its own. A forked kernel is moved into its own cgroup, with the memory
and process limits of any kernel, before nbgrader sends it a cell; when it goes, that cgroup is killed
and its scratch folder removed. What kernels of one worker share, one after another and never at once, is
the sandbox's namespaces and its tmpfs folders (/tmp, /dev/shm), which the template empties before each
fork. Only a grader that runs as root, on a host whose cgroups hold, uses a template; elsewhere, and
whenever the template is gone (a submission may kill it), kernels start afresh.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

from grading.grader import settings
from grading.grader.sandbox import CGROUP_HEADROOM_BYTES, MAX_TASKS, SCRATCH_PREFIX, KernelCgroup, bwrap_prefix, emptied_folders, kernel_pid

# The variables that differ between two kernels of one template (each kernel's scratch folder).
PER_KERNEL = ("HOME", "IPYTHONDIR", "MPLCONFIGDIR", "JUPYTER_RUNTIME_DIR")
# Seconds for the template's imports, and for one fork.
START_TIMEOUT_S, FORK_TIMEOUT_S = 300, 30


class ForkedKernel:
    """The part of `subprocess.Popen` a provisioner uses, for a kernel that is not this process's child: a pidfd.

    Its exit status belongs to the template, its parent, and is not known here: `returncode` is UNKNOWN_EXIT
    once it exited.
    """

    UNKNOWN_EXIT = -1
    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd = os.pidfd_open(pid)

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._pidfd], [], [], 0)[0]:
            self.returncode = self.UNKNOWN_EXIT
            os.close(self._pidfd)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        while (code := self.poll()) is None:
            if not select.select([self._pidfd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout or 0)
        return code

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            signal.pidfd_send_signal(self._pidfd, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class KernelTemplate:
    """The template process, in its sandbox and cgroup, for kernels with these hidden folders and this environment."""

    def __init__(self, hidden: list[str], env: Mapping[str, str], account: tuple[int, int], pool: Path):
        self.key = (tuple(hidden), _shared_env(env))
        self.pool = pool
        memory = int(settings.MEMORY_LIMIT_GB * 2**30) + CGROUP_HEADROOM_BYTES
        self.cgroup = KernelCgroup.create(f"template-{uuid.uuid4().hex[:12]}", memory, MAX_TASKS)
        shared = [str(path) for path in emptied_folders()] + ["/dev/shm"]
        command = [*bwrap_prefix(pool, hidden, account), sys.executable, "-m", "grading.kernel.template", *shared]
        self.process = subprocess.Popen(command, env={**env, **{name: str(pool) for name in PER_KERNEL}}, cwd="/",
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True,
                                        preexec_fn=self.cgroup.join, text=True)  # fmt: skip
        self.ready = self._answer(START_TIMEOUT_S) == {"ready": True}

    def _answer(self, timeout: float) -> dict | None:
        assert self.process.stdout is not None
        if not select.select([self.process.stdout], [], [], timeout)[0]:
            return None
        try:
            return json.loads(self.process.stdout.readline())
        except ValueError:  # nothing (the template is gone), or not an answer
            return None

    def fork(self, argv: list[str], env: Mapping[str, str], scratch: Path) -> int | None:
        """A kernel with these arguments and this environment, in `scratch`: its PID as this process sees it;
        None when the template is gone or does not answer."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps({"argv": argv, "env": dict(env), "cwd": str(scratch)}) + "\n")
            self.process.stdin.flush()
            answer = self._answer(FORK_TIMEOUT_S)
        except (OSError, ValueError):
            return None
        return _host_pid(self.process.pid, answer["pid"]) if answer and "pid" in answer else None

    def stop(self) -> None:
        self.process.kill()  # bwrap: its PID namespace, the template and any kernel it forked, goes with it
        self.process.wait()
        self.cgroup.remove()


def _shared_env(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in env.items() if k not in PER_KERNEL))


def _host_pid(bwrap_pid: int, inner_pid: int) -> int | None:
    """The PID, as this process sees it, of the template's child whose PID in the sandbox is `inner_pid`."""
    template = kernel_pid(bwrap_pid)
    if template is None:
        return None
    try:
        children = [child for task in Path(f"/proc/{template}/task").iterdir() for child in (task / "children").read_text().split()]
    except OSError:  # the template is gone
        return None
    for child in children:
        try:
            status = Path(f"/proc/{child}/status").read_text()
        except OSError:
            continue
        spaces = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
        if spaces and spaces[-1] == str(inner_pid):
            return int(child)
    return None


_template: KernelTemplate | None = None
_template_failed = False  # its imports failed once in this process: not tried again
_kernels_pool: Path | None = None


def pool() -> Path:
    """This process's folder for its kernels' scratch folders, bound into the template's sandbox: the grading
    account may enter it, not write it. Named after this process, as every scratch folder is, so that whoever
    kills this process removes it (sandbox.remove_scratch_folders)."""
    global _kernels_pool
    if _kernels_pool is None:
        _kernels_pool = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-template-"))
        _kernels_pool.chmod(0o711)
    return _kernels_pool


def template(hidden: list[str], env: Mapping[str, str], account: tuple[int, int]) -> KernelTemplate | None:
    """This process's template for kernels with these hidden folders and this environment, started when needed;
    None when it cannot start."""
    global _template, _template_failed
    if _template is not None and (_template.key != (tuple(hidden), _shared_env(env)) or _template.process.poll() is not None):
        stop()
    if _template is None and not _template_failed:
        started = KernelTemplate(hidden, env, account, pool())
        if started.ready:
            _template = started
        else:
            started.stop()
            _template_failed = True
    return _template


def stop() -> None:
    """Stop the template: the next kernel that asks for one gets a new one."""
    global _template
    if _template is not None:
        _template.stop()
        _template = None


@atexit.register
def close() -> None:
    """Stop the template and remove this process's kernel folders."""
    global _kernels_pool
    stop()
    if _kernels_pool is not None:
        shutil.rmtree(_kernels_pool, ignore_errors=True)
        _kernels_pool = None
