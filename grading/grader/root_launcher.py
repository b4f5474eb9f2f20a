"""Grading kernels of a grader that is not root, under the grading account with every limit, through sudo.

In the workshop, formgrader's Autograde button grades in the instructor's own server. `make workshop`
installs a sudoers rule that lets the instructor's account run one program as root: the launcher
`main` of this module. It starts the kernel as `make autograde` does as root: in its own cgroup (memory
and process count), in bubblewrap, as the account `latent-gradients-grader` with no capability. What
the caller asks for is checked, not trusted: the scratch folder must be the caller's own, the
environment keeps only the course's variables, and the caller's home is hidden with the folders it
names. The kernel runs with umask 007 and the scratch folder is shared through the grading account's
group, of which the instructor is a member: each side reads what the other writes there, nobody else.
SIGINT reaches the kernel; SIGTERM, or the death of sudo, kills it and removes its cgroup and its files.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import pwd
import re
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

from grading.grader import sandbox, settings

# The course's variables and the standard ones a kernel reads: nothing else of the caller reaches it.
KERNEL_VARIABLES = re.compile(r"^(LATENT_GRADIENTS_\w+|GRADING_\w+|HF_\w+|TRANSFORMERS_\w+|OMP_\w+|MKL_\w+|OPENBLAS_\w+|TQDM_DISABLE|PYTHONWARNINGS"
                              r"|PYTHONPATH|MALLOC_ARENA_MAX|HOME|IPYTHONDIR|MPLCONFIGDIR|TMPDIR|JUPYTER_RUNTIME_DIR|PATH|LANG|LC_\w+)$")  # fmt: skip
SCRATCH_MODE = 0o2770  # the caller's folder, the grading account's group (inherited by what is made in it)
KERNEL_UMASK = 0o007
PROBE = "--probe"
PR_SET_PDEATHSIG = 1


def share_scratch(scratch: Path, connection_file: Path) -> None:
    """The caller's side, before it runs the launcher: the kernel's account reaches the scratch folder and
    reads the connection file through its group (the caller, a member, may give files to it)."""
    gid = pwd.getpwnam(sandbox.GRADER_ACCOUNT).pw_gid
    for path, mode in ((scratch, SCRATCH_MODE), (connection_file, 0o640)):
        os.chown(path, -1, gid)
        os.chmod(path, mode)


def command(launcher: str, scratch: Path, hidden: list[str], env: dict[str, str], kernel: list[str]) -> list[str]:
    """The caller's command line: sudo, the launcher, what the kernel needs, the kernel's own command."""
    pairs = [f"--env={name}={value}" for name, value in env.items() if KERNEL_VARIABLES.match(name) and name != settings.SECRET_ENV]
    return ["sudo", "--non-interactive", launcher, f"--scratch={scratch}", *(f"--hide={path}" for path in hidden), *pairs, "--", *kernel]


def problem(launcher: str) -> tuple[str | None, str | None]:
    """Through the launcher: why it cannot start kernels here, and which of their limits cannot hold (None: all do)."""
    try:
        probe = subprocess.run(["sudo", "--non-interactive", launcher, PROBE], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"`sudo {launcher}` cannot run ({error})", None
    if probe.returncode != 0:
        return f"`sudo {launcher}` refused ({(probe.stderr or probe.stdout).strip()[-300:] or probe.returncode})", None
    found = json.loads(probe.stdout)
    return found["sandbox"], found["limits"]


async def stop(process: subprocess.Popen, timeout_s: float = 10) -> None:
    """Ask sudo, which relays it, to stop the launcher, and wait until it has: the launcher kills the kernel,
    removes its cgroup and its files from the scratch folder, then exits. Never SIGKILL first: sudo cannot
    relay it, and would die alone while the kernel and the launcher's clean-up go on."""
    if process.poll() is None:
        process.terminate()
    deadline = time.monotonic() + timeout_s
    while process.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if process.poll() is None:
        process.kill()


def _caller() -> pwd.struct_passwd:
    if os.geteuid() != 0 or "SUDO_UID" not in os.environ:
        sys.exit("the grading kernel launcher runs as root through sudo (workshop/prepare.py installs its rule)")
    return pwd.getpwuid(int(os.environ["SUDO_UID"]))


def _checked_scratch(path: str, caller: pwd.struct_passwd, gid: int) -> Path:
    scratch = Path(path)
    info = os.lstat(scratch)
    if not (scratch.is_absolute() and os.path.realpath(scratch) == str(scratch) and stat.S_ISDIR(info.st_mode)):
        sys.exit(f"{path}: not a folder given by its real absolute path")
    if info.st_uid != caller.pw_uid or info.st_gid != gid or stat.S_IMODE(info.st_mode) != SCRATCH_MODE:
        sys.exit(f"{path}: not a scratch folder of {caller.pw_name} shared with the grading account's group (share_scratch)")
    return scratch


def _parse(argv: list[str]) -> tuple[str, list[str], dict[str, str], list[str]]:
    scratch, hidden, env = "", [], {}
    kernel = argv[argv.index("--") + 1 :] if "--" in argv else []
    for argument in argv[: len(argv) - len(kernel) - (1 if kernel else 0)]:
        name, _, value = argument.partition("=")
        if name == "--scratch":
            scratch = value
        elif name == "--hide" and os.path.isabs(value):
            hidden.append(value)
        elif name == "--env":
            key, _, setting = value.partition("=")
            if KERNEL_VARIABLES.match(key) and key != settings.SECRET_ENV:
                env[key] = setting
    if not scratch or not kernel:
        sys.exit("usage: launcher --scratch=DIR [--hide=DIR]... [--env=NAME=VALUE]... -- KERNEL COMMAND...")
    return scratch, hidden, env, kernel


def _probe() -> int:
    print(json.dumps({"sandbox": sandbox.sandbox_problem(), "limits": sandbox.limits_problem()}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """As root through sudo: `--probe` prints what cannot hold here (nothing: all holds), else runs one kernel."""
    argv = sys.argv[1:] if argv is None else argv
    caller = _caller()
    if argv == [PROBE]:
        return _probe()
    account = sandbox.grader_account()
    assert account is not None  # root
    scratch, hidden, env, kernel = _parse(argv)
    scratch = _checked_scratch(scratch, caller, account[1])
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # sudo gone (killed): stop too
    if os.getppid() == 1:
        return 1
    home = Path(caller.pw_dir)
    if home != Path("/") and not any(p.is_relative_to(home) for p in sandbox._python_and_course_paths()):
        hidden.append(str(home))
    memory = int(settings.MEMORY_LIMIT_GB * 2**30) + sandbox.CGROUP_HEADROOM_BYTES
    cgroup = sandbox.KernelCgroup.create(f"kernel-{uuid.uuid4().hex[:16]}", memory, sandbox.MAX_TASKS)

    def enter() -> None:
        os.umask(KERNEL_UMASK)
        cgroup.join()

    process = subprocess.Popen([*sandbox.bwrap_prefix(scratch, hidden, account), *kernel], env=env, cwd="/", preexec_fn=enter,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)  # fmt: skip

    def interrupt(signum: int, _frame: object) -> None:
        target = sandbox.kernel_pid(process.pid)
        if target is not None:
            os.kill(target, signum)

    def terminate(_signum: int, _frame: object) -> None:
        process.kill()  # bwrap: with it (--die-with-parent) its whole PID namespace

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    try:
        return process.wait()
    finally:
        if process.poll() is None:
            process.kill()
        cgroup.remove()
        _remove_kernel_files(scratch, account)


def _remove_kernel_files(scratch: Path, account: tuple[int, int]) -> None:
    """What the kernel left in the scratch folder (IPython's folders are its account's only), removed as that
    account, so that the caller can remove the folder."""
    uid, gid = map(str, account)
    subprocess.run(["setpriv", "--reuid", uid, "--regid", gid, "--clear-groups", "--no-new-privs", "--",
                    "find", str(scratch), "-mindepth", "1", "-depth", "-user", uid, "-delete"],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=60)  # fmt: skip
