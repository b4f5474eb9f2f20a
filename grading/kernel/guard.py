"""In-kernel integrity: what the checks are made of when the kernel starts, and who calls the reference.

Set up by `grading.kernel.setup` before any student code runs: `snapshot()` records the learner checks,
`torch.testing` and the methods of the libraries' classes, and `changed()` names those a student's code
has since replaced; `watch_worlds()` fingerprints every world the notebook loads, and `world_changed()`
names those since changed; `memoize_reference()` wraps each reference solution so the checks compute it
once per input and a call to it can be noticed; `tripwire()` records any call into the reference
solutions while the hidden tests run the student's function. It lives in the student's kernel, so a
determined student could subvert it: the static scan (`grading.grader.integrity`), outside the kernel,
is the authoritative check, and this one catches names built at run time.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_SOLUTIONS_DIR = str(Path(__file__).resolve().parents[2] / "solutions")
_WATCHED_MODULES = ("tests", "torch.testing", "solutions")
# Libraries whose classes' methods are watched: patching one (say, every SAE encodes to zeros) changes
# the reference's results as much as the learner's.
_WATCHED_LIBRARIES = ("sae_lens", "transformer_lens", "torch.nn")
_TORCH_FUNCTIONS = ("allclose", "isclose", "equal", "isfinite", "argwhere", "where", "unravel_index")

_snapshot: dict[str, tuple[Any, Any]] = {}
_trip: dict[str, Any] = {"depth": 0, "hits": []}


def _watched() -> Iterator[tuple[str, Any, str, Any]]:
    """(qualified name, owner, attribute, value) of everything the checks' verdicts depend on."""
    import torch

    modules = [name for name in list(sys.modules) if any(name == m or name.startswith(m + ".") for m in _WATCHED_MODULES)]
    for module_name in sorted(modules):
        module = sys.modules[module_name]
        for attribute, value in list(vars(module).items()):
            if isinstance(value, (types.FunctionType, type)) and getattr(value, "__module__", "").startswith(module_name.split(".")[0]):
                yield f"{module_name}.{attribute}", module, attribute, value
    for attribute in _TORCH_FUNCTIONS:
        yield f"torch.{attribute}", torch, attribute, getattr(torch, attribute)
    libraries = [name for name in list(sys.modules) if any(name == m or name.startswith(m + ".") for m in _WATCHED_LIBRARIES)]
    for module_name in sorted(libraries):
        for class_name, klass in list(vars(sys.modules[module_name]).items()):
            if isinstance(klass, type) and klass.__module__ == module_name:
                for attribute, value in list(vars(klass).items()):
                    if isinstance(value, types.FunctionType):
                        yield f"{module_name}.{class_name}.{attribute}", klass, attribute, value


def _methods() -> dict[str, frozenset[str]]:
    """The names of each watched library class's own methods: a method added to a subclass counts too."""
    found: dict[str, set[str]] = {}
    for _, owner, attribute, _ in _watched():
        if isinstance(owner, type):
            found.setdefault(f"{owner.__module__}.{owner.__qualname__}", set()).add(attribute)
    return {klass: frozenset(names) for klass, names in found.items()}


_snapshot_methods: dict[str, frozenset[str]] = {}


def snapshot() -> None:
    for name, _, _, value in _watched():
        _snapshot[name] = (value, getattr(value, "__code__", None))
    _snapshot_methods.update(_methods())


def changed() -> list[str]:
    """The watched names whose value or code differs from the snapshot (or that disappeared)."""
    now = {name: (owner, attribute) for name, owner, attribute, _ in _watched()}
    found = []
    for name, (value, code) in _snapshot.items():
        owner_attr = now.get(name)
        current = getattr(*owner_attr, None) if owner_attr else None
        if current is not value or getattr(current, "__code__", None) is not code:
            found.append(name)
    for klass, names in _methods().items():
        found += [f"{klass}.{name}" for name in sorted(names - _snapshot_methods.get(klass, names))]
    for module_name in _WATCHED_MODULES:
        module = sys.modules.get(module_name)
        if module is not None and not getattr(module, "__file__", None):
            found.append(f"sys.modules[{module_name!r}]")
    return found


_worlds: list[tuple[Any, dict[str, str]]] = []


def _fingerprint(world: Any) -> dict[str, str]:
    import torch

    modules = {"model": world.model} | {f"saes[{k}]": v for k, v in world.saes.items()} | {f"attn_saes[{k}]": v for k, v in (world.attn_saes or {}).items()}
    found = {}
    for owner, module in modules.items():
        for name, tensor in module.state_dict().items():
            data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
            found[f"{owner}.{name}"] = hashlib.sha1(data.numpy().tobytes()).hexdigest()
    return found


def watch_worlds() -> None:
    """Wrap `load_world` (where the notebook imports it from) so that each world it returns is fingerprinted."""
    import part_utils
    import part_utils.worlds

    original = part_utils.worlds.load_world

    @functools.wraps(original)
    def load_world(*args: Any, **kwargs: Any) -> Any:
        world = original(*args, **kwargs)
        _worlds.append((world, _fingerprint(world)))
        return world

    part_utils.load_world = part_utils.worlds.load_world = load_world


def world_changed() -> list[str]:
    """The parameters (and buffers) of the loaded worlds that differ from when they were loaded."""
    changed = []
    for world, fingerprint in _worlds:
        now = _fingerprint(world)
        changed += [name for name, digest in fingerprint.items() if now.get(name) != digest]
    return changed


def _key(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        data = value.detach().cpu().contiguous()
        return ("tensor", tuple(data.shape), str(data.dtype), hashlib.sha1(data.numpy().tobytes()).hexdigest())
    if isinstance(value, torch.nn.Module):
        return ("module", id(value), sum(p._version for p in value.parameters()))
    if isinstance(value, (list, tuple)):
        return tuple(_key(item) for item in value)
    if value is None or isinstance(value, (int, float, str, bool)):
        return value
    return ("object", id(value))


def _record_hit(what: str) -> None:
    if _trip["depth"] > 0:
        _trip["hits"].append(what)


def memoize_reference(max_entries: int = 2) -> None:
    """Wrap the reference gradient functions in `solutions` with a small cache keyed by their inputs."""
    solutions = importlib.import_module("solutions")
    for name in ("latent_to_latent_gradients", "token_to_latent_gradients", "latent_to_logit_gradients", "latent_to_latent_gradients_attn"):
        original = getattr(solutions, name)
        cache: OrderedDict = OrderedDict()

        @functools.wraps(original)
        def wrapper(*args: Any, __original=original, __cache=cache, __name=name, **kwargs: Any) -> Any:
            _record_hit(f"solutions.{__name}")
            key = (_key(args), _key(sorted(kwargs.items())))
            if key in __cache:
                __cache.move_to_end(key)
                return __cache[key]
            result = __original(*args, **kwargs)
            __cache[key] = result
            while len(__cache) > max_entries:
                __cache.popitem(last=False)
            return result

        wrapper.__module__ = "solutions"
        setattr(solutions, name, wrapper)


def _profile(frame: types.FrameType, event: str, arg: Any) -> None:
    if event == "call" and frame.f_code.co_filename.startswith(_SOLUTIONS_DIR):
        _record_hit(f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_code.co_name}")


@contextmanager
def tripwire() -> Iterator[list[str]]:
    """Record calls into the reference solutions made inside this block; yields the list of calls."""
    hits: list[str] = []
    previous_hits, previous_profile = _trip["hits"], sys.getprofile()
    _trip["hits"], _trip["depth"] = hits, _trip["depth"] + 1
    sys.setprofile(_profile)
    try:
        yield hits
    finally:
        sys.setprofile(previous_profile)
        _trip["depth"] -= 1
        _trip["hits"] = previous_hits
        previous_hits.extend(hits)


def defined_in_solutions(obj: Any) -> bool:
    """Whether a function or class (or one of its bases or methods) comes from the reference solutions."""
    candidates = [obj]
    if isinstance(obj, type):
        candidates += list(obj.__mro__) + [v for klass in obj.__mro__ for v in vars(klass).values()]
    for candidate in candidates:
        candidate = getattr(candidate, "__func__", candidate)
        module = getattr(candidate, "__module__", "") or ""
        code = getattr(candidate, "__code__", None)
        if module == "solutions" or module.startswith("solutions.") or (code is not None and code.co_filename.startswith(_SOLUTIONS_DIR)):
            return True
    return False
