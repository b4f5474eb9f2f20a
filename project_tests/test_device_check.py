"""`make device-check` on a machine without an NVIDIA GPU: it says so plainly and measures nothing.

CUDA is hidden from the subprocess (CUDA_VISIBLE_DEVICES=""), so this runs the same on any machine.
What needs a GPU (the checks, the catalogues and the bench on CUDA) is only run by the script itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import tests as checks

ROOT = Path(__file__).resolve().parent.parent


def test_device_check_says_no_gpu_was_found(tmp_path: Path) -> None:
    output = tmp_path / "device_check.md"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "device_check.py"), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no NVIDIA GPU found" in done.stdout
    assert "CUDA stays unmeasured" in done.stdout
    assert not output.exists()  # no figures file that could be mistaken for a measurement


def _device_check_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("device_check", ROOT / "scripts" / "device_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_device_check_steps_run_on_any_device(tiny_world, tmp_path: Path) -> None:
    """The steps that do not need CUDA themselves (the learner checks on a given world, the derived
    tolerance, the figures file) work on the CPU's tiny world, so a GPU run fails only on the GPU."""
    device_check = _device_check_module()
    report = device_check.Report(tmp_path / "figures.md")
    assert device_check.learner_checks(report, {"tiny random": tiny_world})
    device_check.tolerance(report, 4e-4)
    report.write()
    text = (tmp_path / "figures.md").read_text()
    assert text.count("| passed |") == len(checks.EXERCISES)  # one learner check per exercise of the table
    assert "derived tolerance (10x that, at least the CPU's 0.001): 4.0e-03" in text
    assert "ACTION: raise the tolerance" in text  # 4e-3 is above the 1e-3 in use on CUDA
