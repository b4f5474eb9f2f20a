"""In the grading kernel: the grader's calls of the learner's code on hidden inputs (`grading.grader.verdict`).

The grader writes a request into the kernel's scratch folder at call time (`request.json`: the learner's
name, the hidden world's seed and each call's arguments; `inputs.safetensors`: their tensors) and runs
`serve(folder)`. The kernel builds the same hidden world from the seed, calls the learner's function (or
class) on each call's arguments and writes what it returned (`results.json`, `outputs.safetensors`).
Nothing here decides anything: the grader computes the reference itself and compares.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from grading.kernel import codec

REQUEST, INPUTS, RESULTS, OUTPUTS = "request.json", "inputs.safetensors", "results.json", "outputs.safetensors"


def world_refs(world: Any) -> dict[str, Any]:
    """The world's model and SAEs by the names requests use for them (the grader's world has the same)."""
    refs: dict[str, Any] = {"model": world.model}
    for name in ("saes", "attn_saes"):
        saes = getattr(world, name, None) or {}
        refs[name] = saes
        refs.update({f"{name}/{key}": sae for key, sae in saes.items()})
    return refs


def _call(target: Any, call: dict[str, Any], inputs: dict[str, torch.Tensor], refs: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
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

    refs = world_refs(hidden_world(int(request["world_seed"])))
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
    save_file(tensors, here / OUTPUTS)
    (here / RESULTS).write_text(json.dumps(results), encoding="utf-8")
