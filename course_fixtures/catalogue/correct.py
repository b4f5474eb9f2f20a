"""Correct learner solutions, written in the different ways learners write them. Each must pass."""

from __future__ import annotations

from typing import Any

import einops
import torch
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor

import solutions
from solutions import straightforward

from . import correct_entry as correct
from . import learner

# ---------------------------------------------------------------------------------------------
# Exercise 1: SparseTensor
# ---------------------------------------------------------------------------------------------


@correct("sparse_tensor", description="the course's own solution: argwhere, torch.zeros with dtype and device")
class ArgwhereZeros(solutions.SparseTensor):
    @classmethod
    def from_dense(cls, dense: Tensor) -> solutions.SparseTensor:
        return cls((dense[dense > 0], torch.argwhere(dense > 0), tuple(dense.shape)), dense)

    @classmethod
    def from_sparse(cls, sparse: tuple) -> solutions.SparseTensor:
        values, indices, shape = sparse
        dense = torch.zeros(shape, dtype=values.dtype, device=values.device)
        dense[indices.unbind(-1)] = values
        return cls(sparse, dense)


@correct("sparse_tensor", description="nonzero() and masked_select; index_put_ with the transposed indices")
class NonzeroIndexPut(solutions.SparseTensor):
    @classmethod
    def from_dense(cls, dense: Tensor) -> solutions.SparseTensor:
        active = dense > 0
        return cls((dense.masked_select(active), active.nonzero(), tuple(dense.shape)), dense)

    @classmethod
    def from_sparse(cls, sparse: tuple) -> solutions.SparseTensor:
        values, indices, shape = sparse
        dense = values.new_zeros(shape).index_put_(tuple(indices.T), values)
        return cls(sparse, dense)


@correct("sparse_tensor", description="flat indices: scatter into a flattened tensor, then reshape")
class FlatScatter(solutions.SparseTensor):
    @classmethod
    def from_dense(cls, dense: Tensor) -> solutions.SparseTensor:
        flat = dense.flatten()
        where = (flat > 0).nonzero().squeeze(-1)
        indices = torch.stack(torch.unravel_index(where, dense.shape), dim=-1)
        return cls((flat[where], indices, tuple(dense.shape)), dense)

    @classmethod
    def from_sparse(cls, sparse: tuple) -> solutions.SparseTensor:
        values, indices, shape = sparse
        strides = torch.tensor([*torch.ones(shape).stride()], device=indices.device) if shape else indices.new_zeros(0)
        flat = values.new_zeros(int(torch.tensor(shape).prod())).scatter(0, (indices * strides).sum(-1), values)
        return cls(sparse, flat.reshape(shape))


# ---------------------------------------------------------------------------------------------
# Exercises 2-3: latent-to-latent gradients
# ---------------------------------------------------------------------------------------------

correct("latent_to_latent", name="reference", description="the course's reference (sparse SAE maps)")(solutions.latent_to_latent_gradients)
correct("latent_to_latent", name="straightforward", description="dense sae.decode / sae.encode, jacrev")(straightforward.latent_to_latent_gradients)
correct("latent_to_latent", name="jacfwd", description="forward mode instead of reverse mode")(learner.latent_to_latent(jacobian=torch.func.jacfwd))
correct("latent_to_latent", name="plain_cache", description="true latents by encoding a plain run_with_cache, no SAEs spliced in")(
    learner.latent_to_latent(how="plain_cache")
)
correct("latent_to_latent", name="error_term_set_and_reset", description="sae.use_error_term = True, set back in a finally block")(
    learner.latent_to_latent(error_term="set_and_reset")
)
correct("latent_to_latent", name="einsum_decode", description="the decoder written out as an einsum plus b_dec")(learner.latent_to_latent(decode="einsum"))


@correct("latent_to_latent", description="model.saes context manager, then a separate no_grad forward for each SAE")
def saes_context(tokens: Tensor, sae_from: SAE, sae_to: SAE, model: HookedSAETransformer) -> Any:
    with torch.no_grad(), model.saes(saes=[sae_from, sae_to], use_error_term=True):
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_sae_acts_post"))
    prev = solutions.SparseTensor.from_dense(cache[learner.acts_name(sae_from)])
    next_true = solutions.SparseTensor.from_dense(cache[learner.acts_name(sae_to)])
    grads, _, _, next_recon = learner.latent_to_latent()(tokens, sae_from, sae_to, model)
    return grads, prev, next_true, next_recon


# ---------------------------------------------------------------------------------------------
# Token-to-latent gradients
# ---------------------------------------------------------------------------------------------

correct("token_to_latent", name="reference", description="the course's reference (jacfwd, sparse encoder)")(solutions.token_to_latent_gradients)
correct("token_to_latent", name="straightforward", description="jacrev, then permute")(straightforward.token_to_latent_gradients)
correct("token_to_latent", name="einsum_scale", description="the scale applied with an einsum instead of broadcasting")(learner.token_to_latent(scale="einsum"))
correct("token_to_latent", name="jacfwd", description="forward mode")(learner.token_to_latent(jacobian=torch.func.jacfwd))


@correct("token_to_latent", description="embed + pos_embed summed by hand, einops.rearrange of the Jacobian", needs_positional_embeddings=True)
def embeddings_by_hand(tokens: Tensor, sae: SAE, model: HookedSAETransformer) -> Any:
    def latents(scales: Tensor):
        resid = (model.embed(tokens) + model.pos_embed(tokens)) * scales.unsqueeze(-1)
        dense = sae.encode(model(resid, start_at_layer=0, stop_at_layer=int(sae.cfg.metadata.hook_name.split(".")[1])))
        return dense[dense > 0], (dense,)

    grads, (dense,) = torch.func.jacrev(latents, has_aux=True)(torch.ones_like(tokens, dtype=torch.float32))
    return einops.rearrange(grads, "n b s -> b s n"), solutions.SparseTensor.from_dense(dense)


# ---------------------------------------------------------------------------------------------
# Latent-to-logit gradients
# ---------------------------------------------------------------------------------------------

correct("latent_to_logit", name="reference", description="the course's reference (final position only)")(solutions.latent_to_logit_gradients)
correct("latent_to_logit", name="straightforward", description="every position unembedded, then [0, -1]")(straightforward.latent_to_logit_gradients)
correct("latent_to_logit", name="jacfwd", description="forward mode")(learner.latent_to_logit(jacobian=torch.func.jacfwd))
correct("latent_to_logit", name="plain_cache", description="true logits and latents from a plain run_with_cache and sae.encode")(
    learner.latent_to_logit(how="plain_cache")
)
correct("latent_to_logit", name="unembed_by_hand", description="stop_at_layer=n_layers, then ln_final and unembed by hand")(
    learner.latent_to_logit(unembed="by_hand")
)
correct("latent_to_logit", name="error_term_set_and_reset", description="sae.use_error_term = True, set back afterwards")(
    learner.latent_to_logit(error_term="set_and_reset")
)

# ---------------------------------------------------------------------------------------------
# Attention SAEs
# ---------------------------------------------------------------------------------------------

correct("attention", name="reference", description="the course's reference (model.hooks context)")(solutions.latent_to_latent_gradients_attn)
correct("attention", name="straightforward", description="run_with_hooks with lambdas")(straightforward.latent_to_latent_gradients_attn)
correct("attention", name="hook_ctx", description="the later z stored in hook.ctx, as in the course's solution")(learner.attention(hooks="ctx"))
correct("attention", name="plain_cache", description="true latents by encoding a plain run_with_cache")(learner.attention(how="plain_cache"))
correct("attention", name="jacfwd", description="forward mode")(learner.attention(jacobian=torch.func.jacfwd))
correct("attention", name="error_term_set_and_reset", description="use_error_term set on both SAEs and set back")(
    learner.attention(error_term="set_and_reset", hooks="context")
)

# ---------------------------------------------------------------------------------------------
# The intermediate functions
# ---------------------------------------------------------------------------------------------

correct("latent_acts_to_later_latent_acts", name="spec_style", description="SparseTensor.from_sparse, sae.decode, the blocks in between, sae.encode")(learner.later_latent_acts())
correct("latent_acts_to_later_latent_acts", name="index_put", description="the dense latents built out of place with index_put")(learner.later_latent_acts(decode="index_put"))
correct("latent_acts_to_later_latent_acts", name="reference", description="the course's lean reference (sparse decode and encode)")(solutions.latent_acts_to_later_latent_acts)
correct("tokens_to_latent_acts", name="broadcast", description="scales broadcast with token_scales[..., None]")(learner.tokens_to_latent_acts())
correct("tokens_to_latent_acts", name="einsum", description="scales applied with einops.einsum")(learner.tokens_to_latent_acts(how="einsum"))
correct("tokens_to_latent_acts", name="reference", description="the course's reference")(solutions.tokens_to_latent_acts)
correct("latent_acts_to_logits", name="spec_style", description="the whole model's logits, then [0, -1] and [token_ids]")(learner.latent_acts_to_logits())
correct("latent_acts_to_logits", name="final_position_only", description="only the final position through ln_final and unembed")(learner.latent_acts_to_logits(unembed="final_only"))
correct("latent_acts_to_logits", name="reference", description="the course's reference (x @ W_U at the final position)")(solutions.latent_acts_to_logits)
correct("latent_acts_to_later_latent_acts_attn", name="run_with_hooks", description="run_with_hooks: one hook replaces the earlier z, one records the later z")(learner.later_latent_acts_attn())
correct("latent_acts_to_later_latent_acts_attn", name="reference", description="the course's reference (model.hooks context)")(solutions.latent_acts_to_later_latent_acts_attn)


# ---------------------------------------------------------------------------------------------
# Exercise 5b: attribution_and_ablation
# ---------------------------------------------------------------------------------------------

correct("attribution", name="reference", description="the course's reference: dense latents, decode + error, jacrev and one batched run")(
    solutions.attribution_and_ablation
)
correct("attribution", name="splice_and_hook", description="model.saes with the error term, a hook on hook_sae_acts_post, one run per latent")(
    learner.attribution()
)
correct("attribution", name="decoder_direction", description="the clean model, with (ablated - activation) x the latent's decoder row added to the residual stream")(
    learner.attribution(how="decoder")
)


# ---------------------------------------------------------------------------------------------
# Exercise 7 (capstone): latent_circuit
# ---------------------------------------------------------------------------------------------

correct("latent_circuit", name="jacrev_sorted", description="dense maps with the error terms, full jacrev Jacobians, sorted() for the top k")(
    learner.latent_circuit()
)
correct("latent_circuit", name="jacfwd", description="the same in forward mode: full jacfwd Jacobians")(
    learner.latent_circuit(jacobian=torch.func.jacfwd)
)
