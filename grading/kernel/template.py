"""In the grading sandbox: a process that has imported what every grading kernel imports, and forks each kernel.

Most of a grading kernel's CPU goes to importing torch, transformer_lens, sae_lens and the course's
part_utils. A batch worker grades one submission after another, so grading/grader/kernel_template.py
starts this process once per worker, in the kernel sandbox and as the grading account, and asks it for
one kernel at a time over its standard streams:

    request, one JSON line on stdin:  {"argv": ipykernel's arguments, "env": the kernel's environment, "cwd": its scratch folder}
    answer, one JSON line on stdout:  {"pid": the kernel's PID in the sandbox}

The grader kills the previous kernel's cgroup, every process that kernel started, before it asks again;
this process then empties the sandbox's shared tmpfs folders and removes its System V IPC objects, so that
nothing one submission left is there for the next. It is not dumpable, so a kernel, which runs as the same account, can neither trace it
nor read its memory or its descriptors. It runs no submission code itself and reads nothing after its
imports.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

# What the notebook's first cell imports, and the kernel itself.
PRELOADED = ("torch", "einops", "jaxtyping", "sae_lens", "transformer_lens", "part_utils", "ipykernel.kernelapp")
PR_SET_DUMPABLE = 4


def _remove(path: Path, device: int) -> None:
    try:
        info = path.lstat()
        if info.st_dev != device:  # a folder bound in from the host (the course, the scratch folders): not ours
            return
        if stat.S_ISDIR(info.st_mode):
            os.chmod(path, stat.S_IRWXU)  # a submission may leave a folder it cannot write; another account's fails here
            for entry in os.scandir(path):
                _remove(Path(entry.path), device)
            path.rmdir()
        else:
            path.unlink()
    except OSError:
        pass  # kept: another account's, or the folders bwrap made to bind a host folder into this one


def empty(folder: Path) -> None:
    """Remove what is in `folder`, a tmpfs of the sandbox, without crossing into what is bound into it."""
    if folder.is_dir():
        device = folder.lstat().st_dev
        for entry in os.scandir(folder):
            _remove(Path(entry.path), device)


def _become_kernel(request: dict[str, Any]) -> None:
    """In the forked child: the kernel's session, streams, folder and environment, then ipykernel."""
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the template's channel to the grader stays with the template
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # the kernel is an ordinary process, as when started afresh
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["ipykernel_launcher", *request["argv"]]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance(argv=request["argv"])


def main() -> int:
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    # Answers go out on a copy of stdout; what a library prints goes nowhere.
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    for module in PRELOADED:
        importlib.import_module(module)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernels are reaped as they exit
    shared = [Path(p) for p in sys.argv[1:]]
    answers.write(json.dumps({"ready": True}) + "\n")
    answers.flush()
    for line in sys.stdin:
        request = json.loads(line)
        for folder in shared:
            empty(folder)
        # System V shared memory, queues and semaphores outlive their process in the sandbox's IPC namespace.
        subprocess.run(["ipcrm", "--all"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                _become_kernel(request)
                status = 0
            finally:
                os._exit(status)
        answers.write(json.dumps({"pid": pid}) + "\n")
        answers.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
