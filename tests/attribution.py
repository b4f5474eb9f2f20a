"""Learner check for `attribution_and_ablation` (is the attribution true?)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor

import solutions
from part_utils.attribution import METRIC_NAMES, answer_metrics, mean_latent_acts
from part_utils.hooks import _get_hook_layer
from tests._exercise import one_layer_inputs, run_check
from tests._report import CheckFailed, close_enough, compare_tensor, shape_of

EXERCISE = "test_attribution_and_ablation"
# The check's latents: the most active ones at the final position, and as many at earlier positions (not BOS).
LATENTS_PER_SIDE = 4
# The check's parts, and the run_check part each is: the estimates are the first output, the effects the rest.
PARTS = {None: None, "estimates": "gradients", "effects": "activations"}

HINT_ERROR_TERM = (
    "These are the values without the SAE's error term: the SAE's reconstruction alone replaced the residual stream. "
    "Keep the error term (resid = sae.decode(acts) + error, error = resid - sae.decode(sae.encode(resid)); or "
    "use_error_term=True when splicing the SAE in), so that with nothing ablated the model is the clean model."
)
HINT_NOT_SPLICED = (
    "Every effect is zero: the ablation never reached the model. Splice the SAE in (model.saes(saes=[sae], "
    "use_error_term=True), or run the model from sae.decode(acts) + error) and change the latent there."
)
HINT_EVERY_POSITION = (
    "These are the effects of ablating the latent at every position. Ablate it only at its own position, "
    "latent_inds[i, 1]: the latent at another position is another node."
)
HINT_SIGN = (
    "The sign is flipped. Both are how much the latent adds to the metric: estimate = gradient x (activation - "
    "ablated value), effect = metric(clean) - metric(ablated)."
)
HINT_RAW_LOGIT = (
    "This is the raw logit of the answer, not the logit difference: the first metric is logits[answer_id] - "
    "logits[contrast_id] (answer_metrics does both metrics)."
)
HINT_ACTIVATION_ONLY = (
    "This is gradient x activation, the estimate for zero-ablation: for mean-ablation the latent moves from its "
    "activation to the ablated value, so multiply the gradient by (activation - ablated value)."
)
HINT_GRADIENT_ONLY = "These are the gradients alone: the estimate multiplies each by (activation - ablated value)."


def check_arguments(tokens: Tensor, sae: SAE, model: HookedSAETransformer, reference_prompts: tuple[str, ...]) -> tuple[Tensor, Tensor]:
    """The latents the check asks about, rows (batch, position, latent), and their ablated values: the mean over
    the world's reference prompts for even rows, zero for odd rows (both ablations in one call)."""
    hook_name = sae.cfg.metadata.hook_name
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=[hook_name], stop_at_layer=_get_hook_layer(sae) + 1)
        acts = sae.encode(cache[hook_name])[0]
    rows = []
    for positions in (slice(-1, None), slice(1, -1)):
        part = acts[positions]
        top = part.flatten().topk(min(LATENTS_PER_SIDE, int((part > 0).sum()))).indices
        offset = range(acts.shape[0])[positions].start
        rows += [(0, offset + i // acts.shape[1], i % acts.shape[1]) for i in top.tolist()]
    latent_inds = torch.tensor(rows, dtype=torch.long, device=tokens.device).reshape(-1, 3)
    means = mean_latent_acts(reference_prompts, sae, model)[latent_inds[:, 2]]
    zeroed = torch.arange(len(latent_inds), device=means.device) % 2 == 1
    return latent_inds, means.masked_fill(zeroed, 0.0)


def _variant(args: tuple, *, error_term: bool = True, every_position: bool = False, raw_logit: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """(estimates, effects, gradients) computed as the reference does, with one known mistake made."""
    tokens, sae, model, latent_inds, ablated_values, answer_id, contrast_id = args
    layer, hook_name = _get_hook_layer(sae), sae.cfg.metadata.hook_name
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=[hook_name], stop_at_layer=layer + 1)
        resid = cache[hook_name]
        acts = sae.encode(resid)
        error = resid - sae.decode(acts) if error_term else torch.zeros_like(resid)

    def metrics(acts: Tensor) -> Tensor:
        logits = model(sae.decode(acts) + error, start_at_layer=layer)[:, -1]
        value = answer_metrics(logits, answer_id, contrast_id)
        return torch.stack([logits[:, answer_id], value[:, 1]], -1) if raw_logit else value

    positions, latents = latent_inds[:, 1], latent_inds[:, 2]
    with torch.enable_grad():
        gradients = torch.func.jacrev(lambda acts: metrics(acts)[0])(acts)[:, 0].detach()
    gradients = gradients[:, positions, latents].T
    estimates = gradients * (acts[0, positions, latents] - ablated_values)[:, None]
    with torch.no_grad():
        ablated = acts.repeat(len(latent_inds), 1, 1)
        rows = torch.arange(len(latent_inds))
        if every_position:
            ablated[rows[:, None], :, latents[:, None]] = ablated_values[:, None, None].to(ablated.dtype)
        else:
            ablated[rows, positions, latents] = ablated_values.to(ablated.dtype)
        effects = metrics(acts) - metrics(ablated)
    return estimates, effects, gradients


def _hint(name: str, got: Tensor, want: Tensor, args: tuple) -> str | None:
    """The known mistake `got` (the estimates or the effects) matches, if any."""
    index = 0 if name == "estimates" else 1
    if close_enough(got, -want):
        return HINT_SIGN
    if index == 1 and close_enough(got, torch.zeros_like(want)):
        return HINT_NOT_SPLICED
    for variant, hint in (
        (dict(error_term=False), HINT_ERROR_TERM),
        (dict(raw_logit=True), HINT_RAW_LOGIT),
        (dict(every_position=True), HINT_EVERY_POSITION),
    ):
        if close_enough(got, _variant(args, **variant)[index]):
            return hint
    if index == 0:
        _, _, gradients = _variant(args)
        if close_enough(got, gradients):
            return HINT_GRADIENT_ONLY
        if close_enough(got, gradients * _true_acts(args)[:, None]):
            return HINT_ACTIVATION_ONLY
    return None


def _true_acts(args: tuple) -> Tensor:
    """The true activations of the check's latents."""
    tokens, sae, model, latent_inds, *_ = args
    hook_name = sae.cfg.metadata.hook_name
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=[hook_name], stop_at_layer=_get_hook_layer(sae) + 1)
        return sae.encode(cache[hook_name])[0, latent_inds[:, 1], latent_inds[:, 2]]


def compare_attribution(got: tuple, want: tuple, args: tuple) -> str:
    for name, value, reference in zip(("estimates", "effects"), got, want):
        if not isinstance(value, Tensor) or value.shape != reference.shape:
            compare_tensor(EXERCISE, name, value, reference, f"Return one row per latent of latent_inds and one column per metric: shape {shape_of(reference)}.")
        hint = None if close_enough(value, reference) else _hint(name, value, reference, args)
        # Column by column: the probabilities are far smaller than the logit differences, and a tolerance
        # scaled to the whole tensor would not see them.
        for column, metric in enumerate(METRIC_NAMES):
            compare_tensor(EXERCISE, f"{name}[:, {column}] ({metric})", value[:, column], reference[:, column], hint)
    latent_inds = args[3]
    return f"estimates and effects of {len(latent_inds)} latents on the logit difference and the probability match the reference"


def test_attribution_and_ablation(
    attribution_and_ablation: Any, model: HookedSAETransformer, saes: Mapping[int, SAE], *, prompt: str | None = None, layer: int | None = None, part: str | None = None
) -> None:
    """Check attribution_and_ablation against the reference on this world's latent-to-logit prompt and layer."""
    if part not in PARTS:
        raise ValueError(f"part should be one of {list(PARTS)}, not {part!r}")
    settings, sae, tokens = one_layer_inputs(model, saes, "latent_to_logit", prompt=prompt, layer=layer)
    latent_inds, ablated_values = check_arguments(tokens, sae, model, settings.reference_prompts)
    if len(latent_inds) == 0:
        raise CheckFailed(EXERCISE, f"no latent of the layer-{settings.layer} SAE is active on {settings.prompt!r}: nothing to check.")
    args = (tokens, sae, model, latent_inds, ablated_values, model.to_single_token(settings.answer), model.to_single_token(settings.contrast))
    run_check(
        EXERCISE, attribution_and_ablation, solutions.attribution_and_ablation, args, model, (sae,),
        n_outputs=2, compare=lambda got, want: compare_attribution(got, want, args), part=PARTS[part], part_label=part,
    )


test_attribution_and_ablation.__test__ = False  # a learner check, not a test of this project
