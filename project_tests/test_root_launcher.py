"""The root launcher's checks of its caller (grading/grader/root_launcher.py), without sudo.

The workshop test (test_workshop.py) runs it through sudo from formgrader; these say, in a second, that
what the instructor's account passes is checked rather than trusted: the kernel's environment keeps the
course's variables only, and the scratch folder must be the caller's, shared with the grading account's
group and nothing else; stopping a kernel waits for the launcher's own clean-up.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from grading.grader import root_launcher, settings

KERNEL = ["python", "-m", "ipykernel_launcher", "-f", "/tmp/kernel.json"]
CALLER_ENV = {
    "LATENT_GRADIENTS_GRADING_WORLD": "toy",
    "LATENT_GRADIENTS_CACHE": "/opt/cache",
    "HOME": "/tmp/scratch",
    "JUPYTERHUB_API_TOKEN": "the-instructor's-hub-token",
    settings.SECRET_ENV: "the-instructor's-secret",
    "LD_PRELOAD": "/tmp/evil.so",
}


def test_the_kernel_gets_the_course_variables_only() -> None:
    line = root_launcher.command("/usr/local/libexec/grading-kernel", Path("/tmp/scratch"), ["/srv/course"], CALLER_ENV, KERNEL)
    assert line[:3] == ["sudo", "--non-interactive", "/usr/local/libexec/grading-kernel"]
    scratch, hidden, env, kernel = root_launcher._parse(line[3:])
    assert (scratch, hidden, kernel) == ("/tmp/scratch", ["/srv/course"], KERNEL)
    assert env == {"LATENT_GRADIENTS_GRADING_WORLD": "toy", "LATENT_GRADIENTS_CACHE": "/opt/cache", "HOME": "/tmp/scratch"}


def test_a_caller_that_passes_more_gets_no_more() -> None:
    """What a caller writes on the command line by hand is filtered as what `command` writes."""
    argv = ["--scratch=/tmp/scratch", "--hide=relative/path", "--env=LD_PRELOAD=/tmp/evil.so", f"--env={settings.SECRET_ENV}=s",
            "--env=JUPYTERHUB_API_TOKEN=t", "--env=PATH=/usr/bin", "--", *KERNEL]  # fmt: skip
    assert root_launcher._parse(argv) == ("/tmp/scratch", [], {"PATH": "/usr/bin"}, KERNEL)
    with pytest.raises(SystemExit):
        root_launcher._parse(["--scratch=/tmp/scratch"])  # no kernel command


@pytest.mark.skipif(os.geteuid() != 0, reason="the scratch folder's owner and group are set as root")
def test_the_scratch_folder_must_be_the_callers_and_shared_with_the_group_only() -> None:
    caller = type("Caller", (), {"pw_uid": 12345, "pw_name": "instructor"})()
    group = 23456
    with tempfile.TemporaryDirectory() as work:
        scratch = Path(work) / "scratch"
        scratch.mkdir()
        os.chown(scratch, caller.pw_uid, group)
        os.chmod(scratch, root_launcher.SCRATCH_MODE)
        assert root_launcher._checked_scratch(str(scratch), caller, group) == scratch
        link = Path(work) / "link"
        link.symlink_to(scratch)
        refused = [str(link), "relative"]
        for path in refused:
            with pytest.raises((SystemExit, OSError)):
                root_launcher._checked_scratch(path, caller, group)
        for owner, gid, mode in ((0, group, root_launcher.SCRATCH_MODE), (caller.pw_uid, 0, root_launcher.SCRATCH_MODE), (caller.pw_uid, group, 0o2777)):
            os.chown(scratch, owner, gid)
            os.chmod(scratch, mode)
            with pytest.raises(SystemExit):
                root_launcher._checked_scratch(str(scratch), caller, group)


# Stands in for sudo: the launcher's clean-up on SIGTERM takes a while, then it exits.
CLEANS_UP_ON_SIGTERM = """import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: (time.sleep(0.3), sys.exit(3)))
print(flush=True)
time.sleep(60)
"""


def test_stop_returns_once_the_launcher_has_cleaned_up() -> None:
    """SIGTERM first, which sudo relays (SIGKILL it cannot), and back only when the process exited of it; one
    that ignores SIGTERM is killed after the timeout."""
    for handler, timeout_s, returncode in (("", 10, 3), ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n", 0.5, -signal.SIGKILL)):
        code = CLEANS_UP_ON_SIGTERM.replace("print(", handler + "print(")
        process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
        assert process.stdout is not None
        process.stdout.readline()  # its handler is in place
        asyncio.run(root_launcher.stop(process, timeout_s))
        assert process.wait(timeout=10) == returncode


def test_it_runs_only_as_root_through_sudo(monkeypatch) -> None:
    monkeypatch.delenv("SUDO_UID", raising=False)
    with pytest.raises(SystemExit):
        root_launcher.main(["--probe"])
