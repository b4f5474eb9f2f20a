"""Leave the model and SAEs as the check found them, and tell the learner what their function changed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from sae_lens import SAE, HookedSAETransformer


@dataclass
class _Snapshot:
    grad_enabled: bool
    training: bool
    hooks: dict[str, tuple[list, list, dict]]  # hook name -> (forward hooks, backward hooks, ctx)
    attached_saes: dict[str, object]  # hook name -> sae_lens wrapper of an attached SAE
    use_error_term: dict[int, bool]  # id(sae) -> use_error_term
    requires_grad: dict[int, bool]  # id(parameter) -> requires_grad
    versions: dict[int, int]  # id(parameter) -> in-place modification counter


def _modules(model: HookedSAETransformer, saes: Iterable[SAE]) -> list[torch.nn.Module]:
    return [model, *saes]


def _all_hook_points(model: HookedSAETransformer, saes: Iterable[SAE]) -> dict[str, object]:
    points = dict(model.hook_dict)
    for sae in saes:
        points.update({f"sae{id(sae)}.{name}": point for name, point in sae.hook_dict.items()})
    return points


def _snapshot(model: HookedSAETransformer, saes: list[SAE]) -> _Snapshot:
    params = [p for module in _modules(model, saes) for p in module.parameters()]
    return _Snapshot(
        grad_enabled=torch.is_grad_enabled(),
        training=model.training,
        hooks={
            name: (list(point.fwd_hooks), list(point.bwd_hooks), dict(point.ctx))
            for name, point in _all_hook_points(model, saes).items()
        },
        attached_saes=dict(model._acts_to_saes),
        use_error_term={id(sae): sae.use_error_term for sae in saes},
        requires_grad={id(p): p.requires_grad for p in params},
        versions={id(p): p._version for p in params},
    )


def _restore(model: HookedSAETransformer, saes: list[SAE], before: _Snapshot) -> list[str]:
    """Put everything back; return what the learner's function had changed, in words."""
    changes: list[str] = []
    if torch.is_grad_enabled() != before.grad_enabled:
        changes.append(f"left gradient computation {'on' if torch.is_grad_enabled() else 'off'} (use `with torch.no_grad():` blocks, not torch.set_grad_enabled)")
        torch.set_grad_enabled(before.grad_enabled)
    if model.training != before.training:
        changes.append("switched the model to training mode")
        model.train(before.training)

    new_saes = [name for name in model._acts_to_saes if name not in before.attached_saes]
    if new_saes or any(model._acts_to_saes.get(name) is not wrapper for name, wrapper in before.attached_saes.items()):
        changes.append(f"left SAEs attached to the model at {new_saes or 'existing hooks'} (use `with model.saes(...)` or model.reset_saes())")
        model.reset_saes()
        for wrapper in before.attached_saes.values():
            model.add_sae(wrapper.sae, use_error_term=wrapper.use_error_term)

    hook_points = _all_hook_points(model, saes)
    leaked = [
        name
        for name, point in hook_points.items()
        if name in before.hooks and [id(h) for h in (*point.fwd_hooks, *point.bwd_hooks)] != [id(h) for h in (*before.hooks[name][0], *before.hooks[name][1])]
    ]
    if leaked:
        names = ", ".join(name.split(".", 1)[1] if name.startswith("sae") else name for name in leaked[:3])
        changes.append(f"left hooks on {names}{' …' if len(leaked) > 3 else ''} (use `with model.hooks(...)` or model.run_with_hooks)")
    for name, (fwd, bwd, ctx) in before.hooks.items():
        point = hook_points.get(name)
        if point is None:
            continue
        kept = {id(handle) for handle in (*fwd, *bwd)}
        for handle in (*point.fwd_hooks, *point.bwd_hooks):
            if id(handle) not in kept:
                handle.hook.remove()
        point.fwd_hooks, point.bwd_hooks = list(fwd), list(bwd)
        point.ctx.clear()
        point.ctx.update(ctx)

    for sae in saes:
        if sae.use_error_term != before.use_error_term[id(sae)]:
            changes.append(
                f"left use_error_term={sae.use_error_term} on the SAE at {sae.cfg.metadata.hook_name} "
                "(pass use_error_term=True to run_with_cache_with_saes instead of setting it on the SAE, or set it back)"
            )
            sae._use_error_term = before.use_error_term[id(sae)]

    params = [p for module in _modules(model, saes) for p in module.parameters()]
    if any(p.requires_grad != before.requires_grad.get(id(p), p.requires_grad) for p in params):
        changes.append("changed requires_grad on model or SAE parameters")
        for p in params:
            p.requires_grad_(before.requires_grad.get(id(p), p.requires_grad))
    if any(p._version != before.versions.get(id(p), p._version) for p in params):
        changes.append(
            "modified model or SAE weights in place; the checks cannot undo that, so reload the world "
            "(`world = load_world()`) before going on"
        )
    return changes


# What to do instead, for a function whose results were right but which left the model or SAEs changed.
HINT_LEAVE_NO_TRACE = (
    "Leave no trace: pass use_error_term=True to run_with_cache_with_saes instead of setting it on an SAE; "
    "attach SAEs and hooks only for one run (`with model.saes(...)`, `with model.hooks(...)`, run_with_hooks); "
    "switch gradients off with a `with torch.no_grad():` block."
)


@contextmanager
def preserved_state(model: HookedSAETransformer, saes: Iterable[SAE]) -> Iterator[list[str]]:
    """Run a block in full float32 precision, then restore grad mode, hooks, attached SAEs, use_error_term
    and the matmul precision, even if it raised.

    Yields a list that, after the block, holds what the block changed (empty when it left no trace).
    """
    saes = list(saes)
    before = _snapshot(model, saes)
    precision = torch.get_float32_matmul_precision()
    # TF32 matmuls (torch.set_float32_matmul_precision("high") or allow_tf32, set by a learner or a library)
    # put correct formulations 9.3e-4 apart on an H200 (make device-check), near the 1% mistakes the checks
    # must catch; in full float32 they are 7e-7 apart, as on the CPU (tests/_report.py tolerances).
    torch.set_float32_matmul_precision("highest")
    changes: list[str] = []
    try:
        yield changes
    finally:
        torch.set_float32_matmul_precision(precision)
        changes.extend(_restore(model, saes, before))
