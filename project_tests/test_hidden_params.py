"""The hidden tests' inputs come from the instructor's secret and the student's id, and every hidden test can fail."""

from __future__ import annotations

import pytest

import tests as checks
from grading.grader import hidden_params

pytestmark = pytest.mark.nbgrader

SECRETS = ("project-tests-secret-1", "another instructor", "0123456789abcdef")


def test_every_hidden_reference_is_non_trivial() -> None:
    """Measured on the references, on the hidden world, for the inputs `choose` chose."""
    chosen = hidden_params.choose(SECRETS[0], "alice")
    world = hidden_params.hidden_world(chosen["world_seed"])
    assert sorted(name for name in chosen if name != "world_seed") == sorted(exercise.name for exercise in checks.EXERCISES)
    for exercise in checks.EXERCISES:
        sizes = hidden_params.reference_sizes(world, exercise.name, chosen[exercise.name])
        assert exercise.result_size is None or (min(sizes["shape"]) > 0 and sizes["gradient"] > 0), (exercise.name, chosen[exercise.name], sizes)
    assert hidden_params.non_trivial({"shape": [0, 12], "gradient": 0.0}) is False
    assert hidden_params.non_trivial({"shape": [3, 12], "gradient": 0.0}) is False


def test_the_secret_and_the_student_decide_the_inputs() -> None:
    """Reproducible for one secret and student; another secret or another student draws others."""
    first, again = hidden_params.candidates(SECRETS[0], "alice"), hidden_params.candidates(SECRETS[0], "alice")
    assert first == again
    for other in (hidden_params.candidates(SECRETS[1], "alice"), hidden_params.candidates(SECRETS[0], "bob")):
        assert first[0] != other[0] and first[1][0] != other[1][0]


def test_the_secret_comes_from_the_environment_or_the_course(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("GRADING_SECRET", raising=False)
    with pytest.raises(RuntimeError, match="No grading secret"):
        hidden_params.read_secret(tmp_path)
    created = hidden_params.read_secret(tmp_path, create=True)
    assert len(created) == 64 and hidden_params.read_secret(tmp_path) == created
    assert (tmp_path / hidden_params.SECRET_FILE).stat().st_mode & 0o077 == 0
    monkeypatch.setenv("GRADING_SECRET", "from the environment")
    assert hidden_params.read_secret(tmp_path) == "from the environment"
