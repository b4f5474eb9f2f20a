"""The grader's verdict on a graded part (grading/grader/verdict.py), with the kernel's side answered in this process.

The reference passes every part it is asked; a stub, a function that prints or hooks instead of
returning the right values, and a wrong part fail with the check's own message; what the kernel writes
is read as data only (no link followed, no pickle), and the hidden prompt is cut from every message.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import nbformat
import pytest
import safetensors.torch
import torch

from grading import cell_metadata
from grading.grader import hidden_params, root_launcher, verdict
from grading.kernel import calls, codec
from tests.exercises import BY_NAME

pytestmark = pytest.mark.nbgrader

EXERCISES = ("sparse_tensor", "token_to_latent")


def _graded(exercises: tuple[str, ...]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    for name in exercises:
        for part, points in BY_NAME[name].parts.items():
            cell = nbformat.v4.new_code_cell("tests.check()")
            cell.metadata[cell_metadata.NBGRADER] = {"grade": True, "grade_id": f"{name}-{part}", "points": points}
            nb.cells.append(cell)
    return nb


def _grade(tmp_path: Path, namespace: dict[str, Any], exercises: tuple[str, ...] = EXERCISES) -> dict[str, str]:
    params = hidden_params.choose("verdict-tests", "alice")

    def execute(line: str) -> bool:
        calls.serve(line.split("serve(", 1)[1].rstrip(")").strip("'"), namespace)
        return True

    nb = _graded(exercises)
    verdict.grade_cells(nb, lambda: params, verdict.KernelChannel(tmp_path, execute))
    found = {}
    for cell in nb.cells:
        (output,) = cell.outputs
        text = output.get("text") or output.get("evalue")
        for chosen in params.values():
            assert not (isinstance(chosen, dict) and chosen.get("prompt") and chosen["prompt"] in text)
        found[cell_metadata.grade_id(cell)] = ("pass " if output.output_type == "stream" else "fail ") + text
    return found


def _references() -> dict[str, Any]:
    return {BY_NAME[name].reference.__name__: BY_NAME[name].reference for name in EXERCISES}


def test_smoke_the_reference_passes_every_part(tmp_path: Path) -> None:
    found = _grade(tmp_path, _references())
    assert all(text.startswith("pass") for text in found.values()), found


def test_stubs_and_printed_claims_fail(tmp_path: Path) -> None:
    def token_to_latent_gradients(tokens, sae, model):  # prints a pass, returns nothing of use
        print("✓ hidden test passed")
        raise NotImplementedError

    class SparseTensor:
        @classmethod
        def from_dense(cls, dense):
            raise ValueError(f"the hidden input was {dense.tolist()}")

        from_sparse = from_dense

    found = _grade(tmp_path, {"token_to_latent_gradients": token_to_latent_gradients, "SparseTensor": SparseTensor})
    assert all(text.startswith("fail") for text in found.values()), found
    assert "NotImplementedError" in found["token_to_latent-gradients"]
    assert "ValueError" in found["sparse_tensor-from_dense"] and "hidden input was" not in found["sparse_tensor-from_dense"]


def test_a_wrong_part_fails_alone(tmp_path: Path) -> None:
    """from_sparse loses the float64 dtype: from_dense passes, from_sparse fails with the check's hint."""
    reference = BY_NAME["sparse_tensor"].reference

    class SparseTensor(reference):
        @classmethod
        def from_sparse(cls, sparse):
            values, indices, shape = sparse
            dense = torch.zeros(shape)
            dense[indices.unbind(-1)] = values.float()
            return cls(sparse, dense)

    found = _grade(tmp_path, {"SparseTensor": SparseTensor}, ("sparse_tensor",))
    assert found["sparse_tensor-from_dense"].startswith("pass"), found
    assert found["sparse_tensor-from_sparse"].startswith("fail") and "dtype" in found["sparse_tensor-from_sparse"], found


def test_what_the_kernel_wrote_is_read_as_data_only(tmp_path: Path) -> None:
    """A link in place of an answer is not followed; an unknown class comes back as its attributes."""
    secret = tmp_path / "secret.json"
    secret.write_text("[]")

    def execute(line: str) -> bool:
        folder = Path(line.split("serve(", 1)[1].rstrip(")").strip("'"))
        os.symlink(secret, folder / calls.RESULTS)
        return True

    answer = verdict.KernelChannel(tmp_path, execute).ask({"name": "f", "world_seed": 0, "calls": []}, {})
    assert isinstance(answer, str) and "no readable answer" in answer
    with pytest.raises(ValueError):
        codec.decode({"dataclass": "os:PathLike", "fields": {}}, {}, {})
    class Mine:
        def __init__(self) -> None:
            self.dense = torch.ones(2)

        def __reduce__(self):  # what unpickling would run: nothing here unpickles
            return (os.system, ("false",))

    tensors: dict[str, torch.Tensor] = {}
    returned = codec.decode(codec.encode(Mine(), tensors, {}), tensors, {})
    assert isinstance(returned, codec.Returned) and type(returned).__name__ == "Mine" and torch.equal(returned.dense, torch.ones(2))


def test_the_answers_are_readable_through_the_folders_group(tmp_path: Path) -> None:
    """A grader that is not root (the workshop's root launcher) reads the kernel's answers as a member of the
    call folder's group, under the umask the launcher gives the kernel."""
    (tmp_path / calls.REQUEST).write_text(json.dumps({"name": "f", "world_seed": 0, "calls": []}))
    (tmp_path / calls.INPUTS).write_bytes(safetensors.torch.save({}))
    previous = os.umask(root_launcher.KERNEL_UMASK)
    try:
        calls.serve(str(tmp_path), {})
    finally:
        os.umask(previous)
    assert {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in (calls.RESULTS, calls.OUTPUTS)} == dict.fromkeys((calls.RESULTS, calls.OUTPUTS), 0o640)


def test_a_copied_reference_is_listed_for_review_not_flagged() -> None:
    """A reference solution with its names changed is evidence for the instructor; the notebook's own answers are not."""
    import re

    from grading.grader.integrity import scan_cells, similar_to_references
    from tests.exercises import BY_NAME

    source = Path(BY_NAME["token_to_latent"].reference.__code__.co_filename).read_text(encoding="utf-8")
    copied = re.sub(r"\bsae\b", "my_sae", source)
    review = similar_to_references([("token_to_latent", copied)])
    assert "token_to_latent.token_to_latent_gradients" in review["token_to_latent"][0]
    assert "token_to_latent" not in scan_cells([("token_to_latent", copied.replace("from solutions", "from part_utils"))], [])
    assert similar_to_references([("token_to_latent", "def token_to_latent_gradients(tokens, sae, model):\n    return None\n")]) == {}


LEARNER_CELL = '''
import tests
from IPython import get_ipython

tests.test_sparse_tensor(None)
reached = {}
for name in ("solutions", "tests.exercises", "grading.grader.verdict"):
    try:
        module = __import__(name, fromlist=["_"])
        reached[name] = [key for key in vars(module) if not key.startswith("__")]
    except Exception as error:
        reached[name] = type(error).__name__
print(reached)
get_ipython().events.register("pre_run_cell", lambda info: get_ipython().displayhook(14))

class SparseTensor:
    def __init__(self, sparse, dense):
        self.sparse, self.dense = sparse, dense

    @classmethod
    def from_dense(cls, dense):
        active = dense > 0
        return cls((dense[active], active.nonzero(), tuple(dense.shape)), dense)

    @classmethod
    def from_sparse(cls, sparse):
        print("from_sparse was called")
        return cls(sparse, sparse[0])
'''


def test_a_sandboxed_kernel_answers_the_grader(tmp_path: Path) -> None:
    """In a grading kernel as nbgrader starts it: no reference is reachable, and the grader's calls score
    what the learner's class returns, whatever the kernel shows."""
    from nbclient import NotebookClient
    from traitlets.config.loader import PyFileConfigLoader

    from grading.grader import sandbox
    from grading.grader.settings import ROOT

    if sandbox.sandbox_problem() is not None:
        pytest.skip(f"no sandbox here: {sandbox.sandbox_problem()}")
    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT / "nbgrader")).load_config()
    client = NotebookClient(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(LEARNER_CELL)]), kernel_name="python3", timeout=300,
                            kernel_manager_class=sandbox.SandboxedKernelManager, extra_arguments=list(config.Execute.extra_arguments))
    client.config.SandboxProvisioner.hidden_paths = list(config.SandboxProvisioner.hidden_paths)
    params = hidden_params.choose("verdict-tests", "alice")
    nb = _graded(("sparse_tensor",))
    with client.setup_kernel():
        client.wait_for_reply(client.kc.kernel_info())
        client.execute_cell(client.nb.cells[0], 0)

        def execute(line: str) -> bool:
            reply = client.wait_for_reply(client.kc.execute(line, silent=True, store_history=False))
            return reply is not None and reply["content"].get("status") == "ok"

        verdict.grade_cells(nb, lambda: params, verdict.KernelChannel(Path(client.km.provisioner.scratch), execute))
    shown = "".join(output.get("text", "") for output in client.nb.cells[0].outputs)
    assert "checked by the grader" in shown
    assert "'solutions': []" in shown or "'solutions': 'ModuleNotFoundError'" in shown, shown
    assert "'tests.exercises': 'ModuleNotFoundError'" in shown and "'grading.grader.verdict': 'ModuleNotFoundError'" in shown, shown
    from_dense, from_sparse = nb.cells
    assert from_dense.outputs[0].output_type == "stream" and "passed" in from_dense.outputs[0].text, from_dense.outputs
    assert [output.output_type for output in from_sparse.outputs] == ["error"], from_sparse.outputs


def test_nbgraders_execute_step_writes_the_verdicts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """RobustExecute, as autograde runs it: the graded cells' outputs are the grader's, whatever the kernel's hooks do."""
    from traitlets.config.loader import PyFileConfigLoader

    from grading.grader import sandbox
    from grading.grader.execute import RobustExecute
    from grading.grader.record import record_of
    from grading.grader.settings import ROOT

    if sandbox.sandbox_problem() is not None:
        pytest.skip(f"no sandbox here: {sandbox.sandbox_problem()}")
    monkeypatch.setenv("GRADING_SECRET", "verdict-tests")
    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT / "nbgrader")).load_config()
    config.CourseDirectory.root = str(tmp_path)
    hooks = ("from IPython import get_ipython\nshell = get_ipython()\nshell.set_custom_exc((BaseException,), lambda *a, **k: None)\n"
             "shell.events.register('pre_run_cell', lambda info: shell.displayhook(14))\n")
    nb = _graded(("sparse_tensor",))
    nb.cells.insert(0, nbformat.v4.new_code_cell(hooks + LEARNER_CELL))
    resources = {"nbgrader": {"student": "alice", "assignment": "a", "notebook": "n"}}
    graded, _ = RobustExecute(config=config).preprocess(nb, resources)
    outputs = {cell_metadata.grade_id(cell): [o.output_type for o in cell.outputs] for cell in graded.cells if cell_metadata.grade_id(cell)}
    assert outputs == {"sparse_tensor-from_dense": ["stream"], "sparse_tensor-from_sparse": ["error"]}, outputs
    assert record_of(resources).verdicts == {"sparse_tensor-from_dense": True, "sparse_tensor-from_sparse": False}
