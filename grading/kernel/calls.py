"""In the grading kernel: the grader's calls of the learner's code on hidden inputs (`grading.grader.verdict`).

The grader writes a request into the kernel's scratch folder at call time (`request.json`: the learner's
name, the hidden world's seed and each call's arguments; `inputs.safetensors`: their tensors) and runs
`serve(folder)`. The kernel builds the same hidden world from the seed, calls the learner's function (or
class) on each call's arguments and writes what it returned (`results.json`, `outputs.safetensors`).
Nothing here decides anything: the grader computes the reference itself and compares.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from grading.kernel import codec

REQUEST, INPUTS, RESULTS, OUTPUTS = "request.json", "inputs.safetensors", "results.json", "outputs.safetensors"
# Readable by the folder's group: a grader that is not root reads the answers through it (root_launcher).
ANSWER_MODE = 0o640


class WorldRefs(Mapping[str, Any]):
    """The world's model and SAEs by the names requests use for them (the grader's world has the same):
    "model", "saes", "attn_saes", "saes/<layer>", "attn_saes/<layer>". A random world builds each SAE the
    first time it is read, so an SAE is built only when a request names it."""

    KINDS = ("saes", "attn_saes")

    def __init__(self, world: Any):
        self._world = world

    def _saes(self, kind: str) -> Mapping[Any, Any]:
        return getattr(self._world, kind, None) or {}

    def __getitem__(self, name: str) -> Any:
        if name == "model":
            return self._world.model
        kind, _, layer = name.partition("/")
        if kind not in self.KINDS:
            raise KeyError(name)
        saes = self._saes(kind)
        if not layer:
            return saes
        for key in saes:  # the name's layer as the mapping's own key, never parsed into anything else
            if str(key) == layer:
                return saes[key]
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        yield "model"
        for kind in self.KINDS:
            yield kind
            yield from (f"{kind}/{key}" for key in self._saes(kind))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def built(self) -> dict[int, str]:
        """id -> name of the model, the SAE mappings and the SAEs built so far (an argument a check passes
        was read from the world, so it is among them)."""
        found = {id(self._world.model): "model"}
        for kind in self.KINDS:
            saes = getattr(self._world, kind, None)
            if saes is None:  # nothing to name (and no short-lived stand-in whose id could be reused)
                continue
            found[id(saes)] = kind
            layers = getattr(saes, "loaded_layers", None)
            for key in saes if layers is None else layers:
                found[id(saes[key])] = f"{kind}/{key}"
        return found


def _call(target: Any, call: dict[str, Any], inputs: dict[str, torch.Tensor], refs: Mapping[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    for attribute in call["path"]:
        target = getattr(target, attribute)
    args = codec.decode(call["args"], inputs, refs)
    try:
        with torch.enable_grad():
            value = target(*args)
        return {"value": codec.encode(value, tensors, codec.argument_refs(args))}
    except Exception as error:  # noqa: BLE001 (the learner's error, whatever it is, is the call's answer)
        return {"raised": type(error).__name__}


def serve(folder: str, namespace: dict[str, Any] | None = None) -> None:
    """Answer the grader's request in `folder` (see the module's docstring) with the learner's definitions in
    `namespace` (the notebook's, by default)."""
    if namespace is None:
        from IPython import get_ipython

        namespace = get_ipython().user_ns
    here = Path(folder)
    request = json.loads((here / REQUEST).read_text(encoding="utf-8"))
    inputs = load_file(here / INPUTS)
    from part_utils.random_world import hidden_world

    refs = WorldRefs(hidden_world(int(request["world_seed"])))
    target = namespace.get(request["name"])
    tensors: dict[str, torch.Tensor] = {}
    results = []
    for call in request["calls"]:
        if target is None:
            results.append({"raised": "NameError"})
            continue
        try:
            results.append(_call(target, call, inputs, refs, tensors))
        except Exception as error:  # noqa: BLE001 (an attribute missing, a result past the codec's bounds)
            results.append({"raised": type(error).__name__})
    _write_answer(here / OUTPUTS, save(tensors))  # safetensors' save_file would make the file its owner's only
    _write_answer(here / RESULTS, json.dumps(results).encode())


def _write_answer(path: Path, data: bytes) -> None:
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, ANSWER_MODE), "wb") as file:
        file.write(data)
