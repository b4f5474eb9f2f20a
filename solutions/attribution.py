"""First-order attribution of a prediction to single latents, beside the measured effect of ablating each."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor

from part_utils.attribution import answer_metrics
from part_utils.hooks import _get_hook_layer
from solutions.sparse_sae import encode_dense


def attribution_and_ablation(
    tokens: Int[Tensor, "1 seq"],
    sae: SAE,
    model: HookedSAETransformer,
    latent_inds: Int[Tensor, "n 3"],
    ablated_values: Float[Tensor, " n"],
    answer_id: int,
    contrast_id: int,
) -> tuple[Float[Tensor, "n 2"], Float[Tensor, "n 2"]]:
    """
    For each latent (a row (batch, position, latent) of `latent_inds`), the first-order estimate and the
    measured effect of setting it to its `ablated_values` entry (0 for zero-ablation, a mean for mean-ablation),
    with the SAE spliced in and its error term kept, on the metrics `answer_metrics(final logits, answer_id, contrast_id)`.

    Returns:
        estimates: (n, 2), the metrics' gradient with respect to the latent x (activation - ablated value)
        effects:   (n, 2), the metrics of the clean run minus those with that one latent ablated
    """
    layer, hook_name = _get_hook_layer(sae), sae.cfg.metadata.hook_name
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=[hook_name], stop_at_layer=layer + 1)
        resid = cache[hook_name]
        acts = encode_dense(sae, resid)
        error = resid - sae.decode(acts)

    def metrics(acts: Tensor) -> Tensor:
        logits = model(sae.decode(acts) + error, start_at_layer=layer)[:, -1]
        return answer_metrics(logits, answer_id, contrast_id)

    positions, latents = latent_inds[:, 1], latent_inds[:, 2]
    gradients = torch.func.jacrev(lambda acts: metrics(acts)[0])(acts)[:, 0]  # (2, seq, d_sae)
    deltas = acts[0, positions, latents] - ablated_values
    estimates = (gradients[:, positions, latents] * deltas).T

    with torch.no_grad():
        clean = metrics(acts)
        ablated = acts.repeat(len(latent_inds), 1, 1)
        ablated[torch.arange(len(latent_inds)), positions, latents] = ablated_values.to(ablated.dtype)
        effects = clean - metrics(ablated)
    return estimates.detach(), effects
