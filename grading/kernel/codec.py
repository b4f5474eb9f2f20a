"""The values that cross between the grader and a grading kernel: JSON for their structure, safetensors for
their tensors, so that reading what a submission returned runs none of its code.

`encode(value, tensors, refs)` writes a value as JSON, moving each tensor into `tensors` (saved with
safetensors by the caller) and writing an object found in `refs` (the world's model and SAEs, or an
argument of the call) as a reference to it. `decode` rebuilds the value on the other side: part_utils'
dataclasses (a `Circuit`) as themselves, any other object as a `Returned` holding its public attributes.
Both sides bound what they handle: depth, items, and the tensors' bytes.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Mapping
from typing import Any

import torch

MAX_DEPTH = 8
MAX_ITEMS = 100_000
MAX_TENSOR_BYTES = 256 * 2**20
MAX_TEXT = 1_000


class TooLarge(ValueError):
    """A value past the codec's bounds."""


class Returned:
    """An object the learner's code returned, as its public attributes (the checks read nothing else)."""

    def __init__(self, attributes: dict[str, Any]):
        self.__dict__.update(attributes)


class _Budget:
    def __init__(self) -> None:
        self.items = 0
        self.bytes = 0

    def spend(self, items: int = 1, nbytes: int = 0) -> None:
        self.items += items
        self.bytes += nbytes
        if self.items > MAX_ITEMS or self.bytes > MAX_TENSOR_BYTES:
            raise TooLarge(f"more than {MAX_ITEMS:,} items or {MAX_TENSOR_BYTES // 2**20} MiB of tensors")


def _public_attributes(value: Any) -> dict[str, Any]:
    names = [name for name in vars(value) if not name.startswith("_")] if hasattr(value, "__dict__") else []
    names += [name for klass in type(value).__mro__ for name, member in vars(klass).items()
              if isinstance(member, property) and not name.startswith("_") and name not in names]
    found = {}
    for name in names[:64]:
        try:
            found[name] = getattr(value, name)
        except Exception:  # noqa: BLE001 (a property of the learner's that raises is left out, as if absent)
            continue
    return found


def encode(value: Any, tensors: dict[str, torch.Tensor], refs: dict[int, str], budget: _Budget | None = None, depth: int = 0) -> Any:
    """`value` as JSON; its tensors go into `tensors`, the objects of `refs` become references."""
    budget = budget or _Budget()
    budget.spend()
    if depth > MAX_DEPTH:
        raise TooLarge(f"nested more than {MAX_DEPTH} deep")
    if id(value) in refs:
        return {"ref": refs[id(value)]}
    if isinstance(value, torch.Tensor):
        data = value.detach().to("cpu").clone().contiguous()
        if data.layout != torch.strided:
            data = data.to_dense()
        budget.spend(nbytes=data.numel() * data.element_size())
        key = f"t{len(tensors)}"
        tensors[key] = data
        return {"tensor": key}
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, (torch.dtype, torch.device)):
        return {"torch": str(value).removeprefix("torch.")}
    if isinstance(value, (tuple, list)):
        return {type(value).__name__: [encode(item, tensors, refs, budget, depth + 1) for item in value]}
    if isinstance(value, dict):
        return {"dict": [[encode(k, tensors, refs, budget, depth + 1), encode(v, tensors, refs, budget, depth + 1)] for k, v in value.items()]}
    if dataclasses.is_dataclass(value) and type(value).__module__.startswith("part_utils."):
        fields = {field.name: encode(getattr(value, field.name), tensors, refs, budget, depth + 1) for field in dataclasses.fields(value)}
        return {"dataclass": f"{type(value).__module__}:{type(value).__qualname__}", "fields": fields}
    attributes = {name: encode(item, tensors, refs, budget, depth + 1) for name, item in _public_attributes(value).items()}
    return {"object": type(value).__name__[:64], "attributes": attributes}


def _part_utils_dataclass(name: str) -> type:
    module, _, qualname = name.partition(":")
    if not module.startswith("part_utils.") or "." in qualname:
        raise ValueError(f"not a part_utils dataclass: {name!r}")
    klass = getattr(importlib.import_module(module), qualname)
    if not (isinstance(klass, type) and dataclasses.is_dataclass(klass)):
        raise ValueError(f"not a part_utils dataclass: {name!r}")
    return klass


def decode(data: Any, tensors: dict[str, torch.Tensor], refs: Mapping[str, Any], depth: int = 0) -> Any:
    """The value `encode` wrote: its tensors from `tensors`, its references from `refs`."""
    if depth > MAX_DEPTH + 1:
        raise TooLarge(f"nested more than {MAX_DEPTH} deep")
    if not isinstance(data, dict):
        if isinstance(data, list):
            raise ValueError("a bare list in an encoded value")
        return data
    if "ref" in data:
        return refs[data["ref"]]
    if "tensor" in data:
        return tensors[data["tensor"]]
    if "float" in data:
        return float(data["float"])
    if "torch" in data:
        text = data["torch"]
        return getattr(torch, text) if isinstance(getattr(torch, text, None), torch.dtype) else torch.device(text)
    if "tuple" in data or "list" in data:
        items = [decode(item, tensors, refs, depth + 1) for item in data.get("tuple", data.get("list"))]
        return tuple(items) if "tuple" in data else items
    if "dict" in data:
        return {decode(k, tensors, refs, depth + 1): decode(v, tensors, refs, depth + 1) for k, v in data["dict"]}
    if "dataclass" in data:
        klass = _part_utils_dataclass(data["dataclass"])
        return klass(**{name: decode(item, tensors, refs, depth + 1) for name, item in data["fields"].items()})
    if "object" in data:
        name = "".join(ch for ch in str(data["object"]) if ch.isalnum() or ch == "_")[:64] or "Returned"
        klass = type(name, (Returned,), {})
        return klass({str(k): decode(v, tensors, refs, depth + 1) for k, v in data["attributes"].items() if str(k).isidentifier()})
    raise ValueError(f"an encoded value of no known kind: {sorted(data)[:3]}")


def argument_refs(args: Any, prefix: str = "arg") -> dict[int, str]:
    """References to the tensors among a call's arguments, so that a result that returns one of them says so
    (a check may ask that `from_sparse` keep the very tensors it was given)."""
    found: dict[int, str] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, torch.Tensor):
            found.setdefault(id(value), path)
        elif isinstance(value, (tuple, list)):
            for index, item in enumerate(value):
                walk(item, f"{path}.{index}")

    walk(args, prefix)
    return found


def resolve_argument_refs(args: Any, prefix: str = "arg") -> dict[str, Any]:
    """The other side of `argument_refs`: path -> the tensor of `args` there."""
    return dict(_paths(args, prefix))


def _paths(value: Any, path: str) -> list[tuple[str, Any]]:
    if isinstance(value, torch.Tensor):
        return [(path, value)]
    if isinstance(value, (tuple, list)):
        return [pair for index, item in enumerate(value) for pair in _paths(item, f"{path}.{index}")]
    return []
