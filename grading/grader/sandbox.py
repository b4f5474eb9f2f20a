"""The grading kernel's sandbox: a jupyter_client kernel provisioner that runs each kernel in bubblewrap.

Every kernel nbgrader starts to grade a submission (nbgrader/nbgrader_config.py) goes through
`SandboxedKernelManager`, whose `SandboxProvisioner` wraps the kernel command in `bwrap`: the file
system read-only with an empty /tmp and home and the course directory hidden, a scratch folder the only
writable place; new user (`nobody`), PID, network, IPC and UTS namespaces, the kernel talking to nbgrader
over Unix sockets; `--die-with-parent` and the PID namespace, so every process a submission started dies
with its kernel (those still running are counted first, for the feedback); the grading environment set,
the instructor's secret removed. Without a working `bwrap` grading stops with an error that says why,
unless GRADING_ALLOW_UNSANDBOXED=1, which is noted in every feedback. docs/grading-security.md says what
this does and does not stop.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import LocalProvisioner
from traitlets import Bool, List, Unicode, default

from grading.grader import settings

# What the sandbox did to the kernels of this process, for the grading notes (RobustExecute reads and
# clears it after each run; one nbgrader process grades one submission at a time).
EVENTS: list[str] = []

UNSANDBOXED_NOTE = "This submission was graded WITHOUT the sandbox (GRADING_ALLOW_UNSANDBOXED=1): its code could reach the course's files and the network."


def _bwrap_prefix(scratch: Path, hidden: list[str]) -> list[str]:
    command = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/dev/shm"]
    emptied = [Path(p) for p in ("/tmp", "/var/tmp", str(Path.home())) if Path(p).is_dir() and Path(p) != Path("/")]
    for path in emptied:
        command += ["--tmpfs", str(path)]
    # ...but the course's code and this Python (a venv, pyenv) may live in one of them: back, read-only.
    for path in sorted(_python_and_course_paths()):
        if any(path.is_relative_to(folder) for folder in emptied):
            command += ["--ro-bind", str(path), str(path)]
    for path in hidden:
        if Path(path).is_dir():
            command += ["--tmpfs", path]
    command += ["--bind", str(scratch), str(scratch), "--chdir", str(scratch),
                "--unshare-all", "--uid", "65534", "--gid", "65534", "--die-with-parent",
                # ipykernel exits when its parent looks gone; bwrap's init is PID 1 and --die-with-parent covers it.
                "--unsetenv", "JPY_PARENT_PID", "--"]
    return command


def _python_and_course_paths() -> set[Path]:
    paths = {settings.ROOT, Path(sys.prefix), Path(sys.base_prefix), Path(os.path.realpath(sys.executable)).parent.parent}
    paths |= {Path(os.path.realpath(entry)) for entry in sys.path if entry and os.path.isdir(entry)}
    # a folder inside another one already listed is bound with it
    return {p for p in paths if p.is_dir() and not any(q != p and p.is_relative_to(q) for q in paths)}


@functools.lru_cache(maxsize=1)
def sandbox_problem() -> str | None:
    """Why the sandbox cannot run on this machine, or None when it can."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (`bwrap`) is not installed (Debian/Ubuntu: `apt-get install bubblewrap`)"
    with tempfile.TemporaryDirectory() as scratch:
        probe = subprocess.run([*_bwrap_prefix(Path(scratch), []), "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"`bwrap` cannot create namespaces here ({probe.stderr.strip() or probe.returncode}); unprivileged user namespaces may be disabled"
    return None


def _namespace_processes(outer_pid: int) -> list[str]:
    """Command lines of the processes in the sandbox's PID namespace, other than its init and the kernel."""
    try:
        children = Path(f"/proc/{outer_pid}/task/{outer_pid}/children").read_text().split()
        namespace = os.readlink(f"/proc/{children[0]}/ns/pid")
    except (OSError, IndexError):
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns" / "pid") != namespace:
                continue
            status = (entry / "status").read_text()
            inner_pid = next(line.split()[-1] for line in status.splitlines() if line.startswith("NSpid:"))
            if inner_pid not in ("1", "2"):  # bwrap's init, then the kernel it started
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                found.append(command[:80] or next(line.split(None, 1)[-1] for line in status.splitlines() if line.startswith("Name:")))
        except (OSError, StopIteration):
            continue
    return found


class SandboxProvisioner(LocalProvisioner):
    """LocalProvisioner that launches the kernel inside bubblewrap, in the grading environment."""

    hidden_paths = List(Unicode(), help="Folders the kernel must not see (the course directory).").tag(config=True)
    allow_unsandboxed = Bool(help="Grade without the sandbox when bwrap cannot run (unsafe; default: refuse).").tag(config=True)

    @default("allow_unsandboxed")
    def _allow_unsandboxed_default(self) -> bool:
        return os.environ.get("GRADING_ALLOW_UNSANDBOXED", "") == "1"

    scratch: Path | None = None
    sandboxed = False

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        problem = sandbox_problem()
        if problem and not self.allow_unsandboxed:
            raise RuntimeError(f"Refusing to grade: the grading sandbox cannot run: {problem}. Install bubblewrap, or set "
                               "GRADING_ALLOW_UNSANDBOXED=1 to grade without isolation (submissions can then reach your files).")
        if self.scratch is not None:  # a restart: the previous kernel's scratch folder goes
            shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch = Path(tempfile.mkdtemp(prefix="latent-gradients-kernel-"))
        km = self.parent
        # Unix sockets in the scratch folder: the kernel needs no network to talk to nbgrader.
        km.transport = "ipc"
        km.connection_file = str(self.scratch / "kernel.json")
        km.ip = str(self.scratch / "kernel-ipc")
        env = settings.kernel_env(settings.kernel_threads(), base=kwargs.get("env") or os.environ)
        env.update({"HOME": str(self.scratch), "IPYTHONDIR": str(self.scratch / ".ipython"), "MPLCONFIGDIR": str(self.scratch),
                    "TMPDIR": str(self.scratch), "JUPYTER_RUNTIME_DIR": str(self.scratch)})
        kwargs["env"] = env
        kwargs = await super().pre_launch(**kwargs)
        self.sandboxed = problem is None
        if problem:
            self.log.warning("GRADING WITHOUT THE SANDBOX (%s): the submission's code can reach your files and the network.", problem)
            EVENTS.append(UNSANDBOXED_NOTE)
            kwargs["cwd"] = str(self.scratch)
        else:
            kwargs["cmd"] = _bwrap_prefix(self.scratch, list(self.hidden_paths)) + list(kwargs["cmd"])
            kwargs["cwd"] = "/"
        return kwargs

    def _kernel_pid(self) -> int | None:
        """The kernel's PID (as this process sees it): the child of bwrap's init, itself bwrap's child."""
        try:
            init = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()[0]
            return int(Path(f"/proc/{init}/task/{init}/children").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            return None

    async def send_signal(self, signum: int) -> None:
        # An interrupt sent to bwrap's process group does not reach the kernel in its PID namespace
        # (measured: the cell keeps running); sent to the kernel's own PID, it does.
        kernel = self._kernel_pid() if self.sandboxed and self.pid is not None else None
        if kernel is not None:
            try:
                os.kill(kernel, signum)
                return
            except OSError:
                pass
        await super().send_signal(signum)

    def note_processes_left(self) -> None:
        """Before the kernel is asked to go: which processes of the submission are still running."""
        if self.pid is not None and self.process is not None and self.process.poll() is None:
            left = _namespace_processes(self.pid)
            if left:
                EVENTS.append(f"{len(left)} process(es) your code started were still running when grading ended and were killed ({'; '.join(left[:3])}).")

    async def cleanup(self, restart: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # bwrap, hence (--die-with-parent) the whole PID namespace
        await super().cleanup(restart=restart)
        if self.scratch is not None and not restart:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None


class SandboxedKernelManager(AsyncKernelManager):
    """The kernel manager of grading: every kernel it starts gets a `SandboxProvisioner`.

    The provisioner is also registered as the entry point `latent-gradients-sandbox`, for a kernelspec
    that names it; this manager does not depend on that registration.
    """

    async def _async_pre_start_kernel(self, **kw: Any) -> tuple[list[str], dict[str, Any]]:
        if self.provisioner is None:
            self.kernel_id = self.kernel_id or kw.pop("kernel_id", str(uuid.uuid4()))
            self.provisioner = SandboxProvisioner(kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self)
        return await super()._async_pre_start_kernel(**kw)

    async def _async_shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        # Counted first: the shutdown interrupts the kernel, asks it to exit, and its processes die with it.
        if isinstance(self.provisioner, SandboxProvisioner):
            self.provisioner.note_processes_left()
        await super()._async_shutdown_kernel(now=now, restart=restart)

    shutdown_kernel = _async_shutdown_kernel  # as AsyncKernelManager: the coroutine itself
