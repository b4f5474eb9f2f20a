"""The straightforward formulation of the gradient computations: dense SAE maps, reverse mode.

Each function here is the plain version of a reference solution: it decodes the dense latent tensor
with `sae.decode`, encodes with `sae.encode`, unembeds every position, and takes every Jacobian with
`jacrev` in one go. It is what most learners write, it is an independent second formulation for the
course's own tests, and it is the baseline of `make bench`. Its results equal the references'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor
from transformer_lens.utilities import get_act_name

from part_utils.circuit import EDGE_THRESHOLD
from part_utils.hooks import _get_hook_layer
from solutions.latent_circuit import attribution, prune
from solutions.sparse_tensor import SparseTensor


def _true_latents(tokens: Tensor, saes: list[SAE], model: HookedSAETransformer, extra_names: tuple[str, ...] = ()):
    names = [f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post" for sae in saes]
    with torch.no_grad():
        logits, cache = model.run_with_cache_with_saes(
            tokens, saes=saes, use_error_term=True, names_filter=[*names, *extra_names], remove_batch_dim=False
        )
    return logits, [SparseTensor.from_dense(cache[name]) for name in names], cache


def _dense(values: Tensor, indices: Tensor, shape: tuple[int, ...]) -> Tensor:
    return SparseTensor.from_sparse((values, indices, shape)).dense


def latent_to_latent_gradients(tokens: Tensor, sae_from: SAE, sae_to: SAE, model: HookedSAETransformer):
    def later_latents(values: Tensor, indices: Tensor, shape: tuple[int, ...]):
        resid = model(
            sae_from.decode(_dense(values, indices, shape)),
            start_at_layer=_get_hook_layer(sae_from),
            stop_at_layer=_get_hook_layer(sae_to),
        )
        later = SparseTensor.from_dense(sae_to.encode(resid))
        return later.sparse[0], (later.dense,)

    _, (prev, next_true), _ = _true_latents(tokens, [sae_from, sae_to], model)
    grads, (next_recon,) = torch.func.jacrev(later_latents, has_aux=True)(*prev.sparse)
    return grads, prev, next_true, SparseTensor.from_dense(next_recon)


def token_to_latent_gradients(tokens: Tensor, sae: SAE, model: HookedSAETransformer):
    def latents(scales: Tensor):
        embeddings = model(tokens, stop_at_layer=0) * scales[..., None]
        later = SparseTensor.from_dense(sae.encode(model(embeddings, start_at_layer=0, stop_at_layer=_get_hook_layer(sae))))
        return later.sparse[0], (later.dense,)

    grads, (dense,) = torch.func.jacrev(latents, has_aux=True)(torch.ones(tokens.shape, device=tokens.device))
    return grads.permute(1, 2, 0), SparseTensor.from_dense(dense)


def latent_to_logit_gradients(tokens: Tensor, sae: SAE, model: HookedSAETransformer, k: int | None = None):
    logits, (acts,), _ = _true_latents(tokens, [sae], model)
    logits = logits[0, -1]
    token_ids = None if k is None else logits.topk(k).indices.tolist()

    def final_logits(values: Tensor, indices: Tensor, shape: tuple[int, ...]):
        all_logits = model(sae.decode(_dense(values, indices, shape)), start_at_layer=_get_hook_layer(sae))[0, -1]
        return all_logits[token_ids], (all_logits,)

    grads, (logits_recon,) = torch.func.jacrev(final_logits, has_aux=True)(*acts.sparse)
    return grads, logits, logits_recon, token_ids, acts


def latent_to_latent_gradients_attn(tokens: Tensor, sae_from: SAE, sae_to: SAE, model: HookedSAETransformer):
    layer_from, layer_to = _get_hook_layer(sae_from), _get_hook_layer(sae_to)
    resid_pre_name = get_act_name("resid_pre", layer_from)

    def later_latents(values: Tensor, indices: Tensor, shape: tuple[int, ...], resid_pre: Tensor):
        z_recon = sae_from.decode(_dense(values, indices, shape))
        z_later = []
        model.run_with_hooks(
            resid_pre,
            start_at_layer=layer_from,
            stop_at_layer=layer_to + 1,
            fwd_hooks=[
                (get_act_name("z", layer_from), lambda z, hook: z_recon),
                (get_act_name("z", layer_to), lambda z, hook: z_later.append(z)),
            ],
        )
        later = SparseTensor.from_dense(sae_to.encode(z_later[0]))
        return later.sparse[0], (later.dense,)

    _, (prev, next_true), cache = _true_latents(tokens, [sae_from, sae_to], model, (resid_pre_name,))
    grads, (next_recon,) = torch.func.jacrev(later_latents, has_aux=True)(*prev.sparse, cache[resid_pre_name])
    return grads, prev, next_true, SparseTensor.from_dense(next_recon)


def latent_circuit(tokens: Tensor, saes: Mapping[int, SAE], model: HookedSAETransformer, layers: Sequence[int], target_token_id: int, k: int, edge_threshold: float = EDGE_THRESHOLD):
    """The reference's pruning on every edge's weight computed up front, in one jacrev per pair of layers."""
    return prune(attribution(tokens, saes, model, layers, target_token_id).dense(), k, edge_threshold)


__all__ = [
    "latent_circuit",
    "latent_to_latent_gradients",
    "latent_to_latent_gradients_attn",
    "latent_to_logit_gradients",
    "token_to_latent_gradients",
]
