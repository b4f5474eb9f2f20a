"""The toy world's trainer writes the same bytes on every run on one machine.

Two runs of the trainer's smoke schedule (every stage, a handful of steps) in fresh processes that differ
in what could leak into the order of the data or the arithmetic: the string hash seed, the working folder
and the thread settings the process inherits.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TRAINER = Path(__file__).resolve().parents[1] / "scripts" / "train_toy_world.py"
WRITTEN = ["model.safetensors", "saes.safetensors", "world.json"]


def _train(out_dir: Path, cwd: Path, **env: str) -> dict[str, bytes]:
    subprocess.run(
        [sys.executable, str(TRAINER), "--schedule", "smoke", "--out-dir", str(out_dir)],
        cwd=cwd,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        timeout=300,
    )
    return {path.name: path.read_bytes() for path in sorted(out_dir.iterdir())}


def test_two_runs_write_the_same_bytes(tmp_path):
    first = _train(tmp_path / "first", TRAINER.parents[1], PYTHONHASHSEED="0")
    second = _train(tmp_path / "second", tmp_path, PYTHONHASHSEED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    assert sorted(first) == sorted(second) == WRITTEN
    # world.json carries a digest of the weights in fp32, before the fp16 rounding of the shipped files.
    assert b'"fp32_weights_sha256"' in first["world.json"]
    assert [name for name in WRITTEN if first[name] != second[name]] == []
