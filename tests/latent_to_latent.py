"""Learner check for exercises 2-3: `latent_to_latent_gradients` (residual-stream SAEs)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor

import solutions
from part_utils.hooks import _get_hook_layer
from tests._compare import LatentJacobian, compare_jacobian, compare_sparse_tensor, require_sparse_tensor
from tests._exercise import layer_pair_inputs, run_check
from tests._report import HINT_BROKEN_GRAPH, CheckFailed, close_enough, shape_of

EXERCISE = "test_latent_to_latent_gradients"

HINT_ERROR_TERM = (
    "latent_acts_next matches the later SAE's activations computed from the earlier SAE's reconstruction. "
    "The true activations need the earlier SAE to pass the residual stream through unchanged: run "
    "run_with_cache_with_saes(..., use_error_term=True) (or set sae_from.use_error_term = True, and back afterwards)."
)
HINT_LAYERS = (
    "An SAE on blocks.{L}.hook_resid_pre reads the input of block L. So the earlier SAE's reconstruction enters "
    "at start_at_layer=L_from, and stop_at_layer=L_to returns the residual stream the later SAE reads."
)
HINT_DENSE_JACOBIAN = (
    "This Jacobian has a column for every latent, active or not. Differentiate with respect to the sparse values "
    "only: call the jacrev-wrapped function with the earlier activations' sparse form (values first), not the dense tensor."
)


def recon_variants(
    prev_dense: Tensor, sae_from: SAE, sae_to: SAE, model: HookedSAETransformer
) -> dict[tuple[int, int], Tensor]:
    """The later SAE's activations from the earlier reconstruction, for the right and off-by-one layer ranges."""
    layer_from, layer_to = _get_hook_layer(sae_from), _get_hook_layer(sae_to)
    variants = {}
    with torch.no_grad():
        resid = sae_from.decode(prev_dense)
        for start in (layer_from - 1, layer_from, layer_from + 1):
            for stop in (layer_to - 1, layer_to, layer_to + 1):
                if 0 <= start < stop <= model.cfg.n_layers:
                    variants[(start, stop)] = sae_to.encode(model(resid, start_at_layer=start, stop_at_layer=stop))
    return variants


def layer_hint(got_recon: Any, prev_dense: Tensor, sae_from: SAE, sae_to: SAE, model: HookedSAETransformer) -> str | None:
    right = (_get_hook_layer(sae_from), _get_hook_layer(sae_to))
    for (start, stop), acts in recon_variants(prev_dense, sae_from, sae_to, model).items():
        if (start, stop) != right and close_enough(getattr(got_recon, "dense", None), acts):
            return (
                f"Your reconstructed activations match start_at_layer={start}, stop_at_layer={stop}; "
                f"they should be {right[0]} and {right[1]}. " + HINT_LAYERS
            )
    return None


def compare_latent_to_latent(
    exercise: str, got: tuple, want: tuple, diagnose_recon: Callable[[Any, tuple], str | None] | None = None
) -> str:
    """Shared by the residual and the attention versions: both return (grads, prev, next, next_recon).

    `diagnose_recon(learner_next_recon, reference_results)` names a known mistake behind wrong
    reconstructed activations, or returns None.
    """
    grads, prev, next_true, next_recon = got
    want_grads, want_prev, want_next, want_recon = want
    for name, value in (("latent_acts_prev", prev), ("latent_acts_next", next_true), ("latent_acts_next_recon", next_recon)):
        require_sparse_tensor(exercise, name, value)

    prev_hint = None
    if prev.dense.ndim == want_prev.dense.ndim - 1:
        prev_hint = "The batch dimension is missing: pass remove_batch_dim=False to run_with_cache_with_saes."
    compare_sparse_tensor(exercise, "latent_acts_prev", prev, want_prev, prev_hint)

    next_hint = HINT_ERROR_TERM if close_enough(next_true.dense, want_recon.dense) else None
    compare_sparse_tensor(exercise, "latent_acts_next", next_true, want_next, next_hint)

    if isinstance(grads, Tensor) and grads.ndim > 2:
        raise CheckFailed(exercise, f"latent_latent_gradients has shape {shape_of(grads)}; it should be 2-D (n_active_next_recon, n_active_prev).", HINT_DENSE_JACOBIAN)
    recon_hint = None
    if diagnose_recon is not None and not close_enough(next_recon.dense, want_recon.dense):
        recon_hint = diagnose_recon(next_recon, want)
    compare_sparse_tensor(exercise, "latent_acts_next_recon", next_recon, want_recon, recon_hint)

    grads_hint = None
    if isinstance(grads, Tensor) and grads.ndim == 2 and grads.shape == want_grads.shape[::-1] and grads.shape[0] != grads.shape[1]:
        grads_hint = "The Jacobian is transposed: rows are the later latents (outputs), columns the earlier latents (inputs)."
    elif isinstance(grads, Tensor) and grads.shape == want_grads.shape and not grads.any() and want_grads.any():
        grads_hint = "Every gradient is zero. " + HINT_BROKEN_GRAPH
    compare_jacobian(
        exercise, "latent_latent_gradients", LatentJacobian(grads, next_recon, prev), LatentJacobian(want_grads, want_recon, want_prev), grads_hint
    )
    return (
        f"gradients {shape_of(want_grads)} between {len(want_prev.sparse[0])} active earlier and "
        f"{len(want_recon.sparse[0])} active later latents match the reference"
    )


def check_latent_pair(
    exercise: str,
    fn: Any,
    reference: Callable[..., Any],
    tokens: Tensor,
    sae_from: SAE,
    sae_to: SAE,
    model: HookedSAETransformer,
    diagnose_recon: Callable[[Any, tuple], str | None],
    part: str | None,
    exception_hint: Callable[[BaseException], str | None] | None = None,
) -> None:
    """The check of a latent-to-latent function, residual or attention: `fn(tokens, sae_from, sae_to, model)`
    returns (gradients, prev, next, next_recon), compared with `reference`'s."""
    run_check(
        exercise, fn, reference, (tokens, sae_from, sae_to, model), model, (sae_from, sae_to),
        n_outputs=4, compare=lambda got, want: compare_latent_to_latent(exercise, got, want, diagnose_recon), part=part, exception_hint=exception_hint,
    )


def test_latent_to_latent_gradients(
    latent_to_latent_gradients: Any, model: HookedSAETransformer, saes: Mapping[int, SAE], *,
    prompt: str | None = None, layer_from: int | None = None, layer_to: int | None = None, part: str | None = None,
) -> None:
    """Check latent_to_latent_gradients against the reference on this world's prompt and layer pair."""
    settings, sae_from, sae_to = layer_pair_inputs(model, saes, "latent_to_latent", prompt=prompt, layer_from=layer_from, layer_to=layer_to)
    check_latent_pair(
        EXERCISE, latent_to_latent_gradients, solutions.latent_to_latent_gradients, model.to_tokens(settings.prompt), sae_from, sae_to, model,
        lambda recon, want: layer_hint(recon, want[1].dense, sae_from, sae_to, model), part, exception_hint=_exception_hint,
    )


def _exception_hint(error: BaseException) -> str | None:
    """A shape error inside the model usually means the activations lost their batch dimension."""
    if isinstance(error, (RuntimeError, IndexError, ValueError)) and any(word in str(error) for word in ("shape", "size", "dimension")):
        return (
            "A shape does not fit. The model and the SAEs expect (batch, seq, ...) tensors: keep the batch dimension "
            "of the cached activations (run_with_cache_with_saes(..., remove_batch_dim=False))."
        )
    return None


test_latent_to_latent_gradients.__test__ = False  # a learner check, not a test of this project
