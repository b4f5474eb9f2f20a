"""Each graded part's verdict, reached in the grader's process from what the learner's code returned.

For one graded part (a row of `tests.exercises` and one of its parts) on this student's hidden inputs:
1. the grader runs the exercise's learner check on its own copy of the hidden world with a `StandIn` in
   the learner's place, which answers with the reference and records each call it gets;
2. the kernel is sent those calls, at call time, through its scratch folder (`grading.kernel.calls`): it
   builds the same world, calls the learner's function and writes what it returned (JSON and
   safetensors, read back with a size cap, never following a link);
3. the grader runs the same check again, the stand-in answering with what the learner's code returned:
   the check's own comparison gives the verdict and its hint.

Nothing the kernel prints, raises, patches or hooks can pass a part: only returned values that match. The
graded cell's outputs are the grader's, and a new row of the table needs no code here.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import io
import json
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import torch
from nbformat import NotebookNode
from safetensors.torch import load, save

from grading import cell_metadata
from grading.grader.hidden_params import hidden_world
from grading.kernel import calls, codec
from tests._report import CheckFailed
from tests.exercises import BY_NAME, Exercise

MAX_RESULTS_BYTES = 16 * 2**20
MAX_OUTPUTS_BYTES = codec.MAX_TENSOR_BYTES + 2**20
PASSED = "✓ hidden test ({exercise}, {part}) passed: the grader ran your code on a second world and prompt and checked what it returned.\n"


class Unreplayable(BaseException):
    """The check asked the learner's code for a call the kernel was not sent (a BaseException: the checks let it through)."""


@dataclass
class Call:
    path: tuple[str, ...]
    args: tuple[Any, ...]


class StandIn:
    """The learner's function or class as a check calls it: `answer(path, args)` answers each call.

    A check calls a function (path `()`) or a class's constructors (`SparseTensor.from_dense`: path
    `("from_dense",)`); attribute access builds the path."""

    def __init__(self, name: str, answer: Callable[[tuple[str, ...], tuple[Any, ...]], Any], path: tuple[str, ...] = ()):
        self._name, self._answer, self._path = name, answer, path

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise Unreplayable(f"keyword arguments in a call of {self!r}")
        return self._answer(self._path, args)

    def __getattr__(self, attribute: str) -> StandIn:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return StandIn(self._name, self._answer, (*self._path, attribute))

    def __repr__(self) -> str:
        return ".".join((self._name, *self._path))


def _key(value: Any) -> Any:
    """What identifies a reference's argument: a tensor by its contents, a module by its identity and version."""
    if isinstance(value, torch.Tensor):
        data = value.detach().cpu().contiguous()
        return ("tensor", tuple(data.shape), str(data.dtype), hashlib.sha1(data.reshape(-1).view(torch.uint8).numpy().tobytes()).hexdigest())
    if isinstance(value, torch.nn.Module):
        return ("module", id(value), sum(p._version for p in value.parameters()))
    if isinstance(value, (list, tuple)):
        return tuple(_key(item) for item in value)
    if isinstance(value, dict):
        return tuple((k, _key(v)) for k, v in value.items())
    return value if value is None or isinstance(value, (int, float, str, bool)) else ("object", id(value))


@contextlib.contextmanager
def references_once() -> Iterator[None]:
    """The reference functions computed once per input while grading one notebook: each part runs its check twice
    (recorded, then judged), and the parts of an exercise share their inputs."""
    import solutions

    originals = {row.reference.__name__: row.reference for row in BY_NAME.values() if not isinstance(row.reference, type)}

    def once(function: Callable[..., Any]) -> Callable[..., Any]:
        computed: dict[Any, Any] = {}

        @functools.wraps(function)
        def reference(*args: Any) -> Any:
            key = _key(args)
            if key not in computed:
                computed[key] = function(*args)
            return computed[key]

        return reference

    for name, function in originals.items():
        setattr(solutions, name, once(function))
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(solutions, name, function)


def learner_name(row: Exercise) -> str:
    """The name the notebook gives the learner's function or class: the reference's own (its contract)."""
    return row.reference.__name__


def _quiet(run: Callable[[], None]) -> CheckFailed | None:
    """Run a check with its printed lines dropped; the failure it raised, or None."""
    with contextlib.redirect_stdout(io.StringIO()), torch.enable_grad():
        try:
            run()
        except CheckFailed as failure:
            return failure
    return None


def record_calls(row: Exercise, world: Any, part: str, arguments: dict[str, Any]) -> list[Call]:
    """The calls the check makes of the learner's code on these inputs, answered by the reference."""
    recorded: list[Call] = []

    def answer(path: tuple[str, ...], args: tuple[Any, ...]) -> Any:
        import solutions

        recorded.append(Call(path, args))
        target: Any = getattr(solutions, learner_name(row))
        for attribute in path:
            target = getattr(target, attribute)
        return target(*args)

    failure = _quiet(lambda: row.run_check(StandIn(learner_name(row), answer), world, part=part, **arguments))
    if failure is not None:
        raise RuntimeError(f"the reference fails its own hidden test ({row.name}, {part}): {failure.render()}")
    return recorded


def request(row: Exercise, world_seed: int, recorded: list[Call], world: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """What the kernel is sent: the calls' arguments, the world's model and SAEs by name."""
    refs = calls.WorldRefs(world).built()
    tensors: dict[str, torch.Tensor] = {}
    encoded = [{"path": list(call.path), "args": codec.encode(call.args, tensors, refs)} for call in recorded]
    return {"name": learner_name(row), "world_seed": world_seed, "calls": encoded}, tensors


def judge(row: Exercise, world: Any, part: str, arguments: dict[str, Any], answers: list[dict[str, Any]],
          outputs: dict[str, torch.Tensor]) -> CheckFailed | None:
    """The check's verdict on what the learner's code returned (`answers`, one per recorded call): None if it passed."""
    world_refs = calls.WorldRefs(world)
    position = iter(range(len(answers) + 1))
    check_name = row.check.__name__

    def answer(path: tuple[str, ...], args: tuple[Any, ...]) -> Any:
        index = next(position)
        if index >= len(answers):
            raise Unreplayable(f"call {index} of {path} was not sent to the kernel")
        given = answers[index]
        if "raised" in given:
            raised = str(given["raised"])[:64]
            if raised == "NotImplementedError":
                raise CheckFailed(check_name, "your code still raises NotImplementedError: fill in its body.")
            why = " (it ran out of memory: the grader's limit per kernel)" if raised == "MemoryError" else ""
            raise CheckFailed(check_name, f"calling your code on the hidden inputs raised {raised}{why}; its message and lines are not shown, "
                                          "as they could quote the hidden inputs.")
        return codec.decode(given["value"], outputs, collections.ChainMap(codec.resolve_argument_refs(args), world_refs))

    try:
        return _quiet(lambda: row.run_check(StandIn(learner_name(row), answer), world, part=part, **arguments))
    except Unreplayable as why:
        return CheckFailed(check_name, f"the grader could not check this part ({why}).")


def _write_new(folder: int, name: str, data: bytes) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=folder)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def _read_capped(folder: int, name: str, cap: int) -> bytes:
    """A regular file the kernel wrote, never through a link and never past `cap` bytes."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder)
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > cap:
            raise codec.TooLarge(f"{name}: not a regular file of at most {cap:,} bytes")
        return file.read(cap + 1)[:cap]


class KernelChannel:
    """Requests to a grading kernel through its scratch folder, one `execute` of a fixed line each.

    `execute(code)` runs the line in the kernel and returns when it answered (False: no answer in time)."""

    def __init__(self, scratch: Path, execute: Callable[[str], bool]):
        self.scratch, self.execute = scratch, execute

    def ask(self, body: dict[str, Any], inputs: dict[str, torch.Tensor]) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]] | str:
        """The kernel's answers and output tensors, or why there are none."""
        path = self.scratch / f"call-{secrets.token_hex(8)}"
        os.mkdir(path, 0o770)
        folder = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        os.fchmod(folder, 0o770)  # whatever the umask: the kernel's account writes here as its owner or through its group (root_launcher)
        # The kernel writes its answers here: the folder is the kernel's account's, as its scratch folder is.
        owner = os.stat(self.scratch)
        if os.geteuid() == 0 and owner.st_uid != 0:
            os.fchown(folder, owner.st_uid, owner.st_gid)
        try:
            _write_new(folder, calls.REQUEST, json.dumps(body).encode())
            _write_new(folder, calls.INPUTS, save(inputs))
            if not self.execute(f"__import__('grading.kernel.calls', fromlist=['serve']).serve({str(path)!r})"):
                return "the kernel did not answer the call on the hidden inputs (it failed, died or ran past the time limit)"
            try:
                answers = json.loads(_read_capped(folder, calls.RESULTS, MAX_RESULTS_BYTES))
                outputs = load(_read_capped(folder, calls.OUTPUTS, MAX_OUTPUTS_BYTES))
            except (OSError, ValueError) as error:
                return f"the kernel gave no readable answer ({type(error).__name__})"
            if not isinstance(answers, list) or not all(isinstance(a, dict) for a in answers):
                return "the kernel's answer is not a list of results"
            return answers, outputs
        finally:
            os.close(folder)


def _hidden_text(failure: CheckFailed, params: dict[str, Any]) -> str:
    """The check's message and hint, with any hidden prompt cut out."""
    text = failure.render()
    for chosen in params.values():
        prompt = chosen.get("prompt") if isinstance(chosen, dict) else None
        if prompt:
            text = text.replace(prompt, "[the hidden prompt]")
    return text


def graded_part(cell: NotebookNode) -> tuple[Exercise, str] | None:
    """The exercise row and part a graded cell scores, from its grade_id (`<exercise>-<part>`)."""
    grade_id = (cell_metadata.grade_id(cell) or "")
    exercise, _, part = grade_id.partition("-")
    row = BY_NAME.get(exercise)
    return (row, part) if row is not None and part in row.parts else None


def grade_cells(nb: NotebookNode, hidden_inputs: Callable[[], dict[str, Any]], channel: KernelChannel) -> dict[str, bool]:
    """Every graded cell's outputs, written by the grader: its part's verdict on the hidden inputs, which
    `hidden_inputs()` chooses (`hidden_params.params_for`: its reference runs are the verdicts' too).
    Returns {graded cell's grade id: passed}."""
    with references_once():
        return _grade_cells(nb, hidden_inputs(), channel)


def _grade_cells(nb: NotebookNode, params: dict[str, Any], channel: KernelChannel) -> dict[str, bool]:
    world = hidden_world(params["world_seed"])
    verdicts: dict[str, bool] = {}
    answered: dict[str, tuple[list[dict[str, Any]], dict[str, torch.Tensor]] | str] = {}
    for cell in nb.cells:
        found = graded_part(cell)
        if found is None:
            continue
        row, part = found
        arguments = dict(params.get(row.name, {}))
        body, inputs = request(row, params["world_seed"], record_calls(row, world, part, arguments), world)
        key = json.dumps(body, sort_keys=True)
        if key not in answered:  # the parts of a gradient exercise make the same calls: sent once
            answered[key] = channel.ask(body, inputs)
        answer = answered[key]
        if isinstance(answer, str):
            failure: CheckFailed | None = CheckFailed(row.check.__name__, answer + ".")
        else:
            failure = judge(row, world, part, arguments, *answer)
        title = {"exercise": row.name, "part": part}
        verdicts[cell_metadata.grade_id(cell) or f"{row.name}-{part}"] = failure is None
        if failure is None:
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=PASSED.format(**title))]
        else:
            text = f"✗ hidden test ({row.name}, {part}) failed on a second world and prompt:\n" + _hidden_text(failure, params)
            cell.outputs = [nbformat.v4.new_output("error", ename="HiddenTestFailed", evalue=text, traceback=[text])]
        cell.execution_count = None
    return verdicts
