"""The grading kernel's sandbox: a jupyter_client kernel provisioner that runs each kernel in bubblewrap.

Every kernel nbgrader starts to grade a submission (nbgrader/nbgrader_config.py) goes through
`SandboxedKernelManager`, whose `SandboxProvisioner` wraps the kernel command in `bwrap`: when the grader
runs as root, the kernel runs as the host system account `latent-gradients-grader` (no capabilities,
`no_new_privs`; it owns nothing of the course); the file system read-only with size-capped empty /tmp,
/var/tmp, /dev/shm and home, the course directory and the references hidden, a scratch folder the only
writable place; new PID, network, IPC and UTS namespaces, the kernel talking to nbgrader over Unix
sockets; a cgroup of its own (v2, or v1) capping memory (shared memory and tmpfs included) and processes;
standard streams on /dev/null and no other inherited descriptor; `--die-with-parent` and the PID
namespace, so every process a submission started dies with its kernel. Without a working `bwrap` grading
stops with an error that says why, unless GRADING_ALLOW_UNSANDBOXED=1, which is noted in every feedback.
docs/grading-security.md says what this does and does not stop.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import LocalProvisioner
from traitlets import Bool, List, Unicode, default

from grading.grader import settings

UNSANDBOXED_NOTE = "This submission was graded WITHOUT the sandbox (GRADING_ALLOW_UNSANDBOXED=1): its code could reach the course's files and the network."

# The system account grading kernels run as when the grader is root: it owns no file of the course.
GRADER_ACCOUNT = os.environ.get("GRADING_ACCOUNT", "latent-gradients-grader")
# Size of each empty tmpfs (/tmp, /var/tmp, /dev/shm, home): room for a library's temporary files, not a
# way around the memory limit (tmpfs pages also count in the kernel's cgroup).
TMPFS_BYTES = int(float(os.environ.get("GRADING_TMPFS_MB", "256")) * 2**20)
# Tasks (processes and threads) per kernel: ipykernel's and torch's threads need a few dozen.
MAX_TASKS = int(os.environ.get("GRADING_MAX_TASKS", "256"))
# The cgroup's memory limit sits above the kernel's RLIMIT_DATA (grading/kernel/setup.py), so that a private
# allocation past the limit is a MemoryError in its cell; the cgroup stops what RLIMIT_DATA does not see
# (shared mappings, tmpfs, page cache) by killing the kernel.
CGROUP_HEADROOM_BYTES = 2**30
CGROUP_ROOT = Path("/sys/fs/cgroup")
SCRATCH_PREFIX = "latent-gradients-kernel-"


def is_root() -> bool:
    return os.geteuid() == 0


@functools.lru_cache(maxsize=1)
def grader_account() -> tuple[int, int] | None:
    """(uid, gid) of the grading account, created when missing; None when this process is not root."""
    if not is_root():
        return None
    try:
        account = pwd.getpwnam(GRADER_ACCOUNT)
    except KeyError:
        # check=False: another grading process may have created it meanwhile; getpwnam says whether it exists.
        created = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", "--comment", "latent-gradients grading kernels", GRADER_ACCOUNT],
                       check=False, capture_output=True, text=True)  # fmt: skip
        try:
            account = pwd.getpwnam(GRADER_ACCOUNT)
        except KeyError:
            raise RuntimeError(f"cannot create the grading account {GRADER_ACCOUNT!r}: {created.stderr.strip()}") from None
    if account.pw_uid == 0 or account.pw_gid == 0:
        raise RuntimeError(f"the grading account {GRADER_ACCOUNT!r} must not be root")
    return account.pw_uid, account.pw_gid


def _own_cgroups() -> dict[str, str]:
    """This process's cgroup path per v1 controller, and under "" its v2 path."""
    found: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            found[controller] = path
    return found


def _v2_mount() -> Path | None:
    for mount in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
        if (mount / "cgroup.controllers").exists():
            return mount
    return None


def _cgroup_parents() -> dict[str, tuple[int, Path]]:
    """Where each limit's kernel cgroups go: "memory" and "pids" -> (cgroup version, folder), v1 where the host
    mounts that controller as v1, else v2. On v2 a folder of its own under the hierarchy's root: a cgroup
    that holds processes (this one) cannot give controllers to children."""
    own, v2 = _own_cgroups(), _v2_mount()
    v2_controllers = (v2 / "cgroup.controllers").read_text().split() if v2 else []
    parents = {}
    for controller in ("memory", "pids"):
        if controller in own and (CGROUP_ROOT / controller / "cgroup.procs").exists():
            parents[controller] = (1, CGROUP_ROOT / controller / own[controller].lstrip("/"))
        elif v2 is not None and controller in v2_controllers:
            parents[controller] = (2, v2 / "latent-gradients")
    return parents


@dataclass
class KernelCgroup:
    """One kernel's cgroup: its folder per limit (one folder on v2, one per controller on v1)."""

    folders: dict[str, Path] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # limit -> why it is not enforced

    @classmethod
    def create(cls, name: str, memory_bytes: int, max_tasks: int) -> KernelCgroup:
        cgroup = cls()
        parents = _cgroup_parents()
        for controller, label in (("memory", "memory"), ("pids", "process count")):
            if controller not in parents:
                cgroup.missing[label] = f"no {controller} cgroup controller on this host"
                continue
            version, parent = parents[controller]
            folder = parent / name
            try:
                if version == 2:  # the controller must reach the kernel's cgroup through its parent
                    parent.mkdir(exist_ok=True)
                    for level in (parent.parent, parent):
                        if controller not in (level / "cgroup.subtree_control").read_text().split():
                            (level / "cgroup.subtree_control").write_text(f"+{controller}")
                folder.mkdir(exist_ok=True)
                cgroup.folders[controller] = folder
                if controller == "pids":
                    (folder / "pids.max").write_text(str(max_tasks))
                elif version == 2:  # no swap either, so that the limit is the memory used
                    (folder / "memory.max").write_text(str(memory_bytes))
                    if (folder / "memory.swap.max").exists():
                        (folder / "memory.swap.max").write_text("0")
                else:
                    (folder / "memory.limit_in_bytes").write_text(str(memory_bytes))
                    if (folder / "memory.memsw.limit_in_bytes").exists():
                        (folder / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
            except OSError as error:
                cgroup.missing[label] = f"cannot create a {controller} cgroup under {parent} ({error.strerror or error})"
        return cgroup

    def join(self) -> None:
        """Move the calling process into every folder: run in the kernel's process before it executes bwrap."""
        self.add(os.getpid())

    def add(self, pid: int) -> None:
        """Move process `pid` into every folder."""
        for folder in dict.fromkeys(self.folders.values()):
            (folder / "cgroup.procs").write_text(str(pid))

    def processes(self) -> list[int]:
        """The processes in the cgroup."""
        found: dict[int, None] = {}
        for folder in self.folders.values():
            try:
                found.update(dict.fromkeys(int(pid) for pid in (folder / "cgroup.procs").read_text().split()))
            except OSError:
                pass
        return list(found)

    def remove(self) -> None:
        """Kill what is left in the cgroup, then remove its folders."""
        for folder in dict.fromkeys(self.folders.values()):
            for _ in range(50):
                try:
                    pids = [int(pid) for pid in (folder / "cgroup.procs").read_text().split()]
                except OSError:
                    break
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                time.sleep(0.05)
            try:
                folder.rmdir()
            except OSError:
                pass
        self.folders.clear()


@functools.lru_cache(maxsize=1)
def limits_problem() -> str | None:
    """Which of the kernel's limits and walls this host cannot enforce, in one line; None when all hold."""
    probe = KernelCgroup.create(f"probe-{uuid.uuid4().hex[:8]}", 2**30, MAX_TASKS)
    probe.remove()
    gaps = [f"{label} ({why})" for label, why in probe.missing.items()]
    if not is_root():
        gaps.append(f"a separate account (kernels run as {pwd.getpwuid(os.geteuid()).pw_name}, who grades; grade as root for {GRADER_ACCOUNT!r})")
    return "; ".join(gaps) or None


def bwrap_prefix(scratch: Path, hidden: list[str], account: tuple[int, int] | None) -> list[str]:
    """bwrap's command line, ending where the kernel's command starts.

    With `account` (the grader is root) bwrap runs privileged, without a user namespace, and `setpriv`
    becomes that account before the kernel starts; without it, bwrap's user namespace maps the kernel's
    user to the account that grades.
    """
    shared = ["--perms", "1777", "--size", str(TMPFS_BYTES)]  # everyone's, sticky, as on the host
    command = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", *shared, "--tmpfs", "/dev/shm"]
    emptied = emptied_folders()
    for path in emptied:
        command += [*(shared if path != Path.home() else shared[2:]), "--tmpfs", str(path)]
    # ...but the course's code and this Python (a venv, pyenv) may live in one of them: back, read-only. bwrap
    # would make the folders between the emptied folder and the path 0700, closed to the kernel's account.
    made: set[Path] = set()
    for path in sorted(_python_and_course_paths()):
        top = next((folder for folder in emptied if path.is_relative_to(folder)), None)
        if top is not None:
            between = sorted(folder for folder in path.parents if folder.is_relative_to(top) and folder != top)
            for folder in (folder for folder in between if folder not in made):
                command += ["--perms", "0755", "--dir", str(folder)]
                made.add(folder)
            command += ["--ro-bind", str(path), str(path)]
    for path in hidden:
        if Path(path).is_dir():
            command += ["--tmpfs", path]
    command += ["--bind", str(scratch), str(scratch), "--chdir", str(scratch), "--die-with-parent",
                # ipykernel exits when its parent looks gone; bwrap's init is PID 1 and --die-with-parent covers it.
                "--unsetenv", "JPY_PARENT_PID"]
    if account is None:
        return [*command, "--unshare-all", "--uid", "65534", "--gid", "65534", "--"]
    uid, gid = map(str, account)
    return [*command, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--",
            "setpriv", "--reuid", uid, "--regid", gid, "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


def emptied_folders() -> list[Path]:
    """The host folders the kernel sees as empty tmpfs."""
    return [Path(p) for p in ("/tmp", "/var/tmp", str(Path.home())) if Path(p).is_dir() and Path(p) != Path("/")]


def _outermost(paths: set[Path]) -> set[Path]:
    """The folders of `paths` not inside another one of them: binding a folder binds what it holds."""
    return {p for p in paths if p.is_dir() and not any(q != p and p.is_relative_to(q) for q in paths)}


def _kernel_needs() -> set[Path]:
    """The folders a kernel cannot start without: the course's code and this Python."""
    return _outermost({settings.ROOT, Path(sys.prefix), Path(sys.base_prefix), Path(os.path.realpath(sys.executable)).parent.parent})


def _python_and_course_paths() -> set[Path]:
    # sys.path also holds the grader's working folder (a course directory, which the kernel never needs) and
    # any extra import folder; all of them are shown, read-only.
    return _outermost(_kernel_needs() | {Path(os.path.realpath(entry)) for entry in sys.path if entry and os.path.isdir(entry)})


def _scratch_folder(account: tuple[int, int] | None, parent: Path | None = None) -> Path:
    # Named after this process, so that whoever kills it can remove what it could not (remove_scratch_folders).
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=parent))
    if account is not None:
        os.chown(scratch, *account)
    return scratch


def remove_scratch_folders(pid: int) -> None:
    """The kernels' scratch folders of grading process `pid`, once it is gone (killed before it removed them)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}{pid}-*"):
        shutil.rmtree(folder, ignore_errors=True)


def _closed_folders(account: tuple[int, int]) -> list[Path]:
    """Folders on the way to the course's code and this Python that `account` cannot enter (or, at the end, list).

    Under an emptied folder (/tmp, home) the sandbox makes the folders above a bound path itself, open to all, so
    only the bound folder's own modes count there.
    """
    uid, gid = account

    def allowed(folder: Path, bits: int) -> bool:
        info = folder.stat()
        shift = 6 if info.st_uid == uid else 3 if info.st_gid == gid else 0
        return (info.st_mode >> shift) & bits == bits

    emptied = emptied_folders()
    closed: set[Path] = set()
    for path in _kernel_needs():
        above = [folder for folder in path.parents if not any(folder.is_relative_to(top) for top in emptied)]
        closed |= {folder for folder in above if not allowed(folder, 0o1)}
        if not allowed(path, 0o5):  # Python's import system lists a folder on sys.path before it imports from it
            closed.add(path)
    return sorted(closed)


@functools.lru_cache(maxsize=1)
def sandbox_problem() -> str | None:
    """Why the sandbox cannot run on this machine, or None when it can."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (`bwrap`) is not installed (Debian/Ubuntu: `apt-get install bubblewrap`)"
    if is_root() and shutil.which("setpriv") is None:
        return "`setpriv` (util-linux) is not installed: the kernel could not leave root"
    account = grader_account()
    closed = _closed_folders(account) if account else []
    if closed:
        return (f"the grading account {GRADER_ACCOUNT!r}, which grading kernels run as, cannot enter {', '.join(map(str, closed))} "
                "on the way to the course's code and its Python: put the repository where other users can enter "
                "(every folder above it o+x, the repository and its .venv o+rx), e.g. /opt/latent-gradients")
    scratch = _scratch_folder(account)
    try:
        probe = subprocess.run([*bwrap_prefix(scratch, [], account), sys.executable, "-c", "import grading"],
                               capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(settings.ROOT)})  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if probe.returncode != 0:
        why = "" if account else ": unprivileged user namespaces may be disabled"
        return f"`bwrap` cannot start a kernel here ({probe.stderr.strip()[-300:] or probe.returncode}){why}"
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
                found.append(_command_line(entry))
        except (OSError, StopIteration):
            continue
    return found


def _command_line(process: Path) -> str:
    """A process's command line, shortened, else its name (/proc/PID given as `process`)."""
    command = (process / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    return command[:80] or next(line.split(None, 1)[-1] for line in (process / "status").read_text().splitlines() if line.startswith("Name:"))


def kernel_pid(bwrap_pid: int) -> int | None:
    """The kernel's PID (as this process sees it): the child of bwrap's init, itself bwrap's child."""
    try:
        init = Path(f"/proc/{bwrap_pid}/task/{bwrap_pid}/children").read_text().split()[0]
        return int(Path(f"/proc/{init}/task/{init}/children").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None


@functools.lru_cache(maxsize=4)
def _root_launcher_problem(launcher: str) -> tuple[str | None, str | None]:
    from grading.grader import root_launcher

    return root_launcher.problem(launcher)


class SandboxProvisioner(LocalProvisioner):
    """LocalProvisioner that launches the kernel inside bubblewrap, in the grading environment."""

    hidden_paths = List(Unicode(), help="Folders the kernel must not see (the course directory).").tag(config=True)
    events = List(Unicode(), help="What the sandbox did to this kernel, for the grading notes (RobustExecute reads them).")
    root_launcher = Unicode("", help="When the grader is not root: a program sudo lets it run as root that starts each kernel as "
                                     "root would (grading/grader/root_launcher.py); empty: kernels run as the grader.").tag(config=True)
    allow_unsandboxed = Bool(help="Grade without the sandbox when bwrap cannot run (unsafe; default: refuse).").tag(config=True)
    kernel_template = Bool(False, help="Fork each kernel from a sandboxed template that has done the kernels' imports, kept for the "
                                       "next kernel (grading/grader/kernel_template.py): for a process that grades many "
                                       "submissions (make autograde's workers).").tag(config=True)

    @default("allow_unsandboxed")
    def _allow_unsandboxed_default(self) -> bool:
        return os.environ.get("GRADING_ALLOW_UNSANDBOXED", "") == "1"

    scratch: Path | None = None
    cgroup: KernelCgroup | None = None
    sandboxed = False
    delegated = False  # started by `root_launcher`
    template: Any = None  # the kernel_template.KernelTemplate this kernel is forked from, if any

    def _usable_root_launcher(self) -> bool:
        if is_root() or not self.root_launcher:
            return False
        problem, gaps = _root_launcher_problem(self.root_launcher)
        if problem:
            self.log.warning("Grading kernels run as %s, not as %r, without cgroup limits: %s.", pwd.getpwuid(os.geteuid()).pw_name, GRADER_ACCOUNT, problem)
        elif gaps:
            self.log.warning("Grading kernels run as %r without these limits: %s.", GRADER_ACCOUNT, gaps)
        return problem is None

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        self.delegated = self._usable_root_launcher()
        problem = None if self.delegated else sandbox_problem()
        if problem and not self.allow_unsandboxed:
            raise RuntimeError(f"Refusing to grade: the grading sandbox cannot run: {problem}. Install bubblewrap, or set "
                               "GRADING_ALLOW_UNSANDBOXED=1 to grade without isolation (submissions can then reach your files).")
        self._release()  # a restart: the previous kernel's scratch folder and cgroup go
        account = None if problem else grader_account()
        env = settings.kernel_env(settings.kernel_threads(), base=kwargs.get("env") or os.environ)
        env["TMPDIR"] = "/tmp"
        self.template = self._template(account, env) if problem is None else None
        self.scratch = _scratch_folder(account, self.template.pool if self.template else None)
        km = self.parent
        # Unix sockets in the scratch folder: the kernel needs no network to talk to nbgrader.
        km.transport = "ipc"
        km.connection_file = str(self.scratch / "kernel.json")
        km.ip = str(self.scratch / "kernel-ipc")
        env.update({"HOME": str(self.scratch), "IPYTHONDIR": str(self.scratch / ".ipython"), "MPLCONFIGDIR": str(self.scratch),
                    "JUPYTER_RUNTIME_DIR": str(self.scratch)})
        kwargs["env"] = env
        kwargs = await super().pre_launch(**kwargs)
        if self.delegated:
            from grading.grader import root_launcher

            root_launcher.share_scratch(self.scratch, Path(km.connection_file))
            kwargs["cmd"] = root_launcher.command(self.root_launcher, self.scratch, list(self.hidden_paths), env, list(kwargs["cmd"]))
            kwargs.update(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True, cwd="/")
            self.sandboxed = True
            return kwargs
        if account is not None:  # written by this process; the kernel reads it as its own account
            os.chown(km.connection_file, *account)
        # Nothing of this process's but the kernel's channel: its standard streams (a worker's log) are not inherited.
        kwargs.update(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)
        self.sandboxed = problem is None
        if problem:
            self.log.warning("GRADING WITHOUT THE SANDBOX (%s): the submission's code can reach your files and the network.", problem)
            self.events.append(UNSANDBOXED_NOTE)
            kwargs["cwd"] = str(self.scratch)
            return kwargs
        memory = int(settings.MEMORY_LIMIT_GB * 2**30) + CGROUP_HEADROOM_BYTES
        self.cgroup = KernelCgroup.create(f"kernel-{self.kernel_id}", memory, MAX_TASKS)
        if self.cgroup.folders:
            kwargs["preexec_fn"] = self.cgroup.join
        for label, why in self.cgroup.missing.items():
            self.log.warning("The grading kernel runs without a %s limit: %s.", label, why)
        kwargs["cmd"] = bwrap_prefix(self.scratch, list(self.hidden_paths), account) + list(kwargs["cmd"])
        kwargs["cwd"] = "/"
        return kwargs

    def _template(self, account: tuple[int, int] | None, env: dict[str, str]) -> Any:
        """The template to fork this kernel from; None where kernels start afresh."""
        if not self.kernel_template or self.delegated or account is None or limits_problem() is not None:
            return None
        from grading.grader import kernel_template

        return kernel_template.template(list(self.hidden_paths), env, account)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        # pre_launch prepared `cmd` as a fresh kernel in its sandbox; from a template, only ipykernel's arguments count.
        kernel = cmd[cmd.index("ipykernel_launcher") + 1:] if self.template is not None and "ipykernel_launcher" in cmd else None
        if self.template is not None and self.cgroup is not None and kernel is not None:
            from grading.grader import kernel_template

            pid = self.template.fork(kernel, kwargs["env"], self.scratch)
            if pid is not None:
                self.cgroup.add(pid)  # before nbgrader sends the kernel anything of the submission's
                self.process, self.pid, self.pgid, self.cwd = kernel_template.ForkedKernel(pid), pid, None, self.scratch
                return self.connection_info
            self.log.warning("The grading kernels' template did not answer; this kernel starts afresh.")
            kernel_template.stop()
        self.template = None
        return await super().launch_kernel(cmd, **kwargs)

    def _release(self) -> None:
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            if self.scratch.exists():
                self.log.warning("The grading kernel's scratch folder %s could not be removed.", self.scratch)
            self.scratch = None

    async def send_signal(self, signum: int) -> None:
        # An interrupt sent to bwrap's process group does not reach the kernel in its PID namespace
        # (measured: the cell keeps running); sent to the kernel's own PID, it does. Sudo relays it to the
        # root launcher, which sends it there.
        forked = self.template is not None
        kernel = kernel_pid(self.pid) if self.sandboxed and not self.delegated and not forked and self.pid is not None else None
        if kernel is not None:
            try:
                os.kill(kernel, signum)
                return
            except OSError:
                pass
        await super().send_signal(signum)

    def note_processes_left(self) -> None:
        """Before the kernel is asked to go: which processes of the submission are still running."""
        # A kernel of the root launcher is in a namespace that this process may not read.
        if self.pid is not None and self.process is not None and self.process.poll() is None and not self.delegated:
            if self.template is not None and self.cgroup is not None:  # the template's namespace is not the kernel's own
                left = []
                for pid in self.cgroup.processes():
                    with contextlib.suppress(OSError, StopIteration):  # gone meanwhile
                        left += [_command_line(Path(f"/proc/{pid}"))] if pid != self.pid else []
            else:
                left = _namespace_processes(self.pid)
            if left:
                self.events.append(f"{len(left)} process(es) your code started were still running when grading ended and were killed ({'; '.join(left[:3])}).")

    async def _stop_launcher(self) -> None:
        from grading.grader import root_launcher

        if self.process is not None:
            await root_launcher.stop(self.process)

    async def kill(self, restart: bool = False) -> None:
        # A kernel of the root launcher is stopped through sudo, which relays SIGTERM only: the launcher has
        # cleared the kernel's files when sudo exits, before this process clears the scratch folder.
        if self.delegated:
            await self._stop_launcher()
        else:
            await super().kill(restart=restart)

    async def terminate(self, restart: bool = False) -> None:
        if self.delegated:
            await self._stop_launcher()
        else:
            await super().terminate(restart=restart)

    async def cleanup(self, restart: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            if self.delegated:
                await self._stop_launcher()
            else:
                self.process.kill()  # bwrap, hence (--die-with-parent) the whole PID namespace
        await super().cleanup(restart=restart)
        if not restart:
            self._release()


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
