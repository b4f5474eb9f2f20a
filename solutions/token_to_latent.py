"""Gradients from each input token to the active latents of a residual-stream SAE."""

from __future__ import annotations

import einops
import torch
from jaxtyping import Float, Int
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor

from part_utils.hooks import _get_hook_layer
from solutions.forward_mode import Path, positionwise_jacobian
from solutions.sparse_sae import encode_active
from solutions.sparse_tensor import SparseTensor


def tokens_to_latent_acts(
    token_scales: Float[Tensor, "batch seq"],
    tokens: Int[Tensor, "batch seq"],
    sae: SAE,
    model: HookedSAETransformer,
) -> tuple[Tensor, tuple[Tensor]]:
    """
    Scales the input of block 0 at each position by `token_scales`, runs the model up to the SAE's
    layer and returns the SAE's latents. The input of block 0, `model(tokens, stop_at_layer=0)`, is the
    token plus positional embedding in a model with learned positions (GPT-2), and the token embedding
    alone in a model with rotary positions (the toy world).

    Returns:
        latent_acts_sparse: the values of the active latents
        latent_acts_dense:  all latent activations as a dense tensor, in a length-1 tuple
    """
    embeddings = model(tokens, stop_at_layer=0)
    scaled = embeddings * token_scales[..., None]
    resid = model(scaled, start_at_layer=0, stop_at_layer=_get_hook_layer(sae))
    values, dense = encode_active(sae, resid)
    return values, (dense,)


def token_to_latent_gradients(
    tokens: Int[Tensor, "batch seq"],
    sae: SAE,
    model: HookedSAETransformer,
) -> tuple[Tensor, SparseTensor]:
    """
    The gradient of every active latent of `sae` with respect to every token's embedding scale, at scale 1.

    Returns:
        token_latent_grads: (batch, seq, n_active_latents)
        latent_acts:        the SAE's latent activations
    """
    token_scales = torch.ones(tokens.shape, device=model.cfg.device)
    # A sequence has far fewer positions than active latents, so forward mode (one JVP per position)
    # does the job of reverse mode (one backward pass per active latent) in fewer passes. Each tangent
    # is kept to the positions it reaches (see solutions/forward_mode.py): scaling position p's
    # embedding moves the residual stream at p only, by that embedding.
    with torch.no_grad():
        embeddings = model(tokens, stop_at_layer=0)

    def entering_rows(columns: Tensor) -> tuple[Tensor, Tensor]:
        batch, positions = columns // tokens.shape[-1], columns % tokens.shape[-1]
        return positions, embeddings[batch, positions]

    jacobian, (latent_acts_dense,) = positionwise_jacobian(
        tokens_to_latent_acts,
        token_scales,
        (tokens, sae, model),
        model,
        None,
        sae,
        Path(0, False, _get_hook_layer(sae), False),
        (embeddings, None),  # at scale 1
        entering_rows,
    )
    token_latent_grads = einops.rearrange(jacobian, "n_active batch seq -> batch seq n_active")
    return token_latent_grads, SparseTensor.from_dense(latent_acts_dense)
