"""The hidden tests' inputs come from the instructor's secret, and every hidden test can fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import tests as checks
from grading.grader import hidden_params

pytestmark = pytest.mark.nbgrader

SECRETS = ("project-tests-secret-1", "another instructor", "0123456789abcdef")


@pytest.mark.parametrize("secret", SECRETS)
def test_every_hidden_reference_is_non_trivial(secret: str) -> None:
    """Measured on the references that `choose` computed on the hidden world for the inputs it chose."""
    chosen = hidden_params.choose(secret)
    drawn = [exercise.name for exercise in checks.EXERCISES if exercise.draw_hidden is not None]
    assert sorted(chosen["reference_sizes"]) == sorted(drawn)
    for exercise in drawn:
        sizes = chosen["reference_sizes"][exercise]
        assert min(sizes["shape"]) > 0 and sizes["gradient"] > 0, (secret, exercise, chosen[exercise], sizes)
    assert hidden_params.non_trivial({"shape": [0, 12], "gradient": 0.0}) is False
    assert hidden_params.non_trivial({"shape": [3, 12], "gradient": 0.0}) is False


def test_the_secret_decides_the_inputs() -> None:
    first, again, other = (hidden_params.candidates(s) for s in (SECRETS[0], SECRETS[0], SECRETS[1]))
    assert first == again
    assert first[0] != other[0] and first[2][0] != other[2][0]


def test_the_secret_comes_from_the_environment_or_the_course(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("GRADING_SECRET", raising=False)
    with pytest.raises(RuntimeError, match="No grading secret"):
        hidden_params.read_secret(tmp_path)
    created = hidden_params.read_secret(tmp_path, create=True)
    assert len(created) == 64 and hidden_params.read_secret(tmp_path) == created
    assert (tmp_path / hidden_params.SECRET_FILE).stat().st_mode & 0o077 == 0
    monkeypatch.setenv("GRADING_SECRET", "from the environment")
    assert hidden_params.read_secret(tmp_path) == "from the environment"


def test_a_kernel_keeps_the_inputs_it_started_with_and_hides_them() -> None:
    """A submission that reads GRADING_HIDDEN_PARAMS learns nothing, and one that sets it changes nothing:
    the kernel read it when it started (before any cell) and took it out of its environment."""
    given = {"world_seed": 1234}
    program = (
        "import json, os\n"
        "import grading.kernel.hidden as hidden\n"
        f"assert {hidden_params.PARAMS_ENV!r} not in os.environ\n"
        f"os.environ[{hidden_params.PARAMS_ENV!r}] = json.dumps({{'world_seed': 0}})\n"
        "print(json.dumps(hidden.params()))\n"
    )
    env = {**os.environ, hidden_params.PARAMS_ENV: json.dumps(given)}
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=120, check=True)
    assert json.loads(done.stdout) == given
