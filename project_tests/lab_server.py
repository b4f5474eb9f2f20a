"""A JupyterLab server for the browser test, started the way `make lab` starts it.

It uses the course's own config (jupyter_lab_config.py: loopback only, nothing fetched from the
network, nbgrader's Validate on), on a random free port with a random token, and keeps the user's
own Jupyter config, data and settings out of the way (all under a temporary folder). For the test
only: every notebook cell is kept in the page (no windowing) so that all outputs can be inspected,
and the app object is exposed as `window.jupyterapp` so that the test can read the notebook model.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAB_CONFIG = ROOT / "jupyter_lab_config.py"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LabServer:
    process: subprocess.Popen
    port: int
    token: str
    root_dir: Path
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def url(self, notebook: str) -> str:
        """The JupyterLab page with `notebook` (relative to the server root) open."""
        return f"{self.base_url}lab/tree/{notebook}?token={self.token}&reset"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # the server shuts its kernels down on SIGTERM
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_lab(root_dir: Path, work_dir: Path, env: dict[str, str], timeout_s: float = 120.0) -> LabServer:
    """Start `jupyter lab` serving `root_dir`; private state lives in `work_dir`. Waits until it answers."""
    port, token = free_port(), secrets.token_hex(16)
    config_dir, data_dir, settings_dir, workspaces_dir = (work_dir / name for name in ("config", "data", "settings", "workspaces"))
    for folder in (config_dir, data_dir, settings_dir, workspaces_dir):
        folder.mkdir(parents=True, exist_ok=True)
    tracker = settings_dir / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    full_env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config_dir),
        "JUPYTER_DATA_DIR": str(data_dir),
        "JUPYTER_RUNTIME_DIR": str(data_dir / "runtime"),
        "IPYTHONDIR": str(work_dir / "ipython"),
        **env,
    }
    command = [
        sys.executable, "-m", "jupyter", "lab",
        f"--config={LAB_CONFIG}",
        "--no-browser",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        f"--LabApp.user_settings_dir={settings_dir}",
        f"--LabApp.workspaces_dir={workspaces_dir}",
        "--LabApp.expose_app_in_browser=True",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log_path = work_dir / "jupyterlab.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    server = LabServer(process, port, token, root_dir, log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {process.returncode}:\n{server.log()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{server.base_url}api/status?token={token}", timeout=5) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"JupyterLab did not answer within {timeout_s:.0f} s:\n{server.log()[-3000:]}")
