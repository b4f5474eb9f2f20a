"""Correct learner solutions, written in the different ways learners write them. Each must pass."""

from __future__ import annotations

from typing import Any

import einops
import torch
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor

import solutions
import tests as checks

from . import correct_entry as correct
from . import learner


def table_formulations(exercise: str, reference: str, straightforward: str) -> None:
    """Register the exercise table's reference and straightforward formulation of `exercise`, described as given."""
    row = checks.BY_NAME[exercise]
    correct(exercise, name="reference", description=reference)(row.reference)
    correct(exercise, name="straightforward", description=straightforward)(row.straightforward)


def correct_ways(*ways: tuple[str, str, str, Any]) -> None:
    """Register one correct entry per way, (exercise, name, description, the learner's function)."""
    for exercise, name, description, fn in ways:
        correct(exercise, name=name, description=description)(fn)


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

table_formulations("latent_to_latent", reference="the course's reference (sparse SAE maps)", straightforward="dense sae.decode / sae.encode, jacrev")
correct_ways(
    ("latent_to_latent", "jacfwd", "forward mode instead of reverse mode", learner.latent_to_latent(jacobian=torch.func.jacfwd)),
    ("latent_to_latent", "plain_cache", "true latents by encoding a plain run_with_cache, no SAEs spliced in", learner.latent_to_latent(how="plain_cache")),
    ("latent_to_latent", "error_term_set_and_reset", "sae.use_error_term = True, set back in a finally block", learner.latent_to_latent(error_term="set_and_reset")),
    ("latent_to_latent", "einsum_decode", "the decoder written out as an einsum plus b_dec", learner.latent_to_latent(decode="einsum")),
)


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

table_formulations("token_to_latent", reference="the course's reference (jacfwd, sparse encoder)", straightforward="jacrev, then permute")
correct_ways(
    ("token_to_latent", "einsum_scale", "the scale applied with an einsum instead of broadcasting", learner.token_to_latent(scale="einsum")),
    ("token_to_latent", "jacfwd", "forward mode", learner.token_to_latent(jacobian=torch.func.jacfwd)),
)


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

table_formulations("latent_to_logit", reference="the course's reference (final position only)", straightforward="every position unembedded, then [0, -1]")
correct_ways(
    ("latent_to_logit", "jacfwd", "forward mode", learner.latent_to_logit(jacobian=torch.func.jacfwd)),
    ("latent_to_logit", "plain_cache", "true logits and latents from a plain run_with_cache and sae.encode", learner.latent_to_logit(how="plain_cache")),
    ("latent_to_logit", "unembed_by_hand", "stop_at_layer=n_layers, then ln_final and unembed by hand", learner.latent_to_logit(unembed="by_hand")),
    ("latent_to_logit", "error_term_set_and_reset", "sae.use_error_term = True, set back afterwards", learner.latent_to_logit(error_term="set_and_reset")),
)

# ---------------------------------------------------------------------------------------------
# Attention SAEs
# ---------------------------------------------------------------------------------------------

table_formulations("attention", reference="the course's reference (model.hooks context)", straightforward="run_with_hooks with lambdas")
correct_ways(
    ("attention", "hook_ctx", "the later z stored in hook.ctx, as in the course's solution", learner.attention(hooks="ctx")),
    ("attention", "plain_cache", "true latents by encoding a plain run_with_cache", learner.attention(how="plain_cache")),
    ("attention", "jacfwd", "forward mode", learner.attention(jacobian=torch.func.jacfwd)),
    ("attention", "error_term_set_and_reset", "use_error_term set on both SAEs and set back", learner.attention(error_term="set_and_reset", hooks="context")),
)

# ---------------------------------------------------------------------------------------------
# The intermediate functions
# ---------------------------------------------------------------------------------------------

correct_ways(
    ("latent_acts_to_later_latent_acts", "spec_style", "SparseTensor.from_sparse, sae.decode, the blocks in between, sae.encode", learner.later_latent_acts()),
    ("latent_acts_to_later_latent_acts", "index_put", "the dense latents built out of place with index_put", learner.later_latent_acts(decode="index_put")),
    ("latent_acts_to_later_latent_acts", "reference", "the course's lean reference (sparse decode and encode)", solutions.latent_acts_to_later_latent_acts),
    ("tokens_to_latent_acts", "broadcast", "scales broadcast with token_scales[..., None]", learner.tokens_to_latent_acts()),
    ("tokens_to_latent_acts", "einsum", "scales applied with einops.einsum", learner.tokens_to_latent_acts(how="einsum")),
    ("tokens_to_latent_acts", "reference", "the course's reference", solutions.tokens_to_latent_acts),
    ("latent_acts_to_logits", "spec_style", "the whole model's logits, then [0, -1] and [token_ids]", learner.latent_acts_to_logits()),
    ("latent_acts_to_logits", "final_position_only", "only the final position through ln_final and unembed", learner.latent_acts_to_logits(unembed="final_only")),
    ("latent_acts_to_logits", "reference", "the course's reference (x @ W_U at the final position)", solutions.latent_acts_to_logits),
    ("latent_acts_to_later_latent_acts_attn", "run_with_hooks", "run_with_hooks: one hook replaces the earlier z, one records the later z", learner.later_latent_acts_attn()),
    ("latent_acts_to_later_latent_acts_attn", "reference", "the course's reference (model.hooks context)", solutions.latent_acts_to_later_latent_acts_attn),
)


# ---------------------------------------------------------------------------------------------
# Exercise 5b: attribution_and_ablation
# ---------------------------------------------------------------------------------------------

correct_ways(
    ("attribution", "reference", "the course's reference: dense latents, decode + error, jacrev and one batched run", solutions.attribution_and_ablation),
    ("attribution", "splice_and_hook", "model.saes with the error term, a hook on hook_sae_acts_post, one run per latent", learner.attribution()),
    ("attribution", "decoder_direction", "the clean model, with (ablated - activation) x the latent's decoder row added to the residual stream", learner.attribution(how="decoder")),
)


# ---------------------------------------------------------------------------------------------
# Exercise 7 (capstone): latent_circuit
# ---------------------------------------------------------------------------------------------

correct_ways(
    ("latent_circuit", "jacrev_sorted", "dense maps with the error terms, full jacrev Jacobians, sorted() for the top k", learner.latent_circuit()),
    ("latent_circuit", "jacfwd", "the same in forward mode: full jacfwd Jacobians", learner.latent_circuit(jacobian=torch.func.jacfwd)),
)
