"""Wrong learner solutions: small, realistic mistakes. Each must fail its check, and the message must
contain the entry's `hint` keyword (case-insensitive) where the mistake can be recognised."""

from __future__ import annotations

from typing import Any

import torch
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor

from part_utils.hooks import _get_hook_layer
from solutions import SparseTensor

from . import learner
from . import wrong_entry as wrong

# ---------------------------------------------------------------------------------------------
# Exercise 1: SparseTensor
# ---------------------------------------------------------------------------------------------


@wrong("sparse_tensor", hint="dense > 0", description="from_dense keeps every nonzero entry, negatives too (dense != 0)")
class NonzeroNotPositive(SparseTensor):
    @classmethod
    def from_dense(cls, dense: Tensor) -> SparseTensor:
        return cls((dense[dense != 0], torch.argwhere(dense != 0), tuple(dense.shape)), dense)


@wrong("sparse_tensor", hint="squeezed", description="indices squeezed: a single nonzero gives shape (k,), not (1, k)")
class SqueezedIndices(SparseTensor):
    @classmethod
    def from_dense(cls, dense: Tensor) -> SparseTensor:
        return cls((dense[dense > 0], torch.argwhere(dense > 0).squeeze(), tuple(dense.shape)), dense)


@wrong("sparse_tensor", hint="zeros included", description="a sign slip: dense >= 0 keeps the zeros")
class GreaterOrEqual(SparseTensor):
    @classmethod
    def from_dense(cls, dense: Tensor) -> SparseTensor:
        return cls((dense[dense >= 0], torch.argwhere(dense >= 0), tuple(dense.shape)), dense)


@wrong("sparse_tensor", hint="reverse order", description="index columns reversed (nonzero(as_tuple=True) stacked back to front)")
class ReversedIndexColumns(SparseTensor):
    @classmethod
    def from_dense(cls, dense: Tensor) -> SparseTensor:
        columns = (dense > 0).nonzero(as_tuple=True)
        return cls((dense[dense > 0], torch.stack(columns[::-1], dim=-1), tuple(dense.shape)), dense)


@wrong("sparse_tensor", hint="same (row-major) order", description="values sorted largest first, so they no longer line up with the indices")
class SortedValues(SparseTensor):
    @classmethod
    def from_dense(cls, dense: Tensor) -> SparseTensor:
        return cls((dense[dense > 0].sort(descending=True).values, torch.argwhere(dense > 0), tuple(dense.shape)), dense)


@wrong("sparse_tensor", hint="dtype", description="from_sparse builds torch.zeros(shape): the values' dtype is lost")
class LostDtype(SparseTensor):
    @classmethod
    def from_sparse(cls, sparse: tuple) -> SparseTensor:
        values, indices, shape = sparse
        dense = torch.zeros(shape, device=values.device)
        dense[indices.unbind(-1)] = values
        return cls(sparse, dense)


@wrong("sparse_tensor", hint="device", description="from_sparse builds torch.zeros(shape, dtype=...): the values' device is lost")
class LostDevice(SparseTensor):
    @classmethod
    def from_sparse(cls, sparse: tuple) -> SparseTensor:
        values, indices, shape = sparse
        dense = torch.zeros(shape, dtype=values.dtype)
        dense[indices.unbind(-1)] = values
        return cls(sparse, dense)


@wrong("sparse_tensor", hint="unbind", description="from_sparse indexes with the (n, k) index matrix itself: dense[indices] = values")
class IndexWithMatrix(SparseTensor):
    @classmethod
    def from_sparse(cls, sparse: tuple) -> SparseTensor:
        values, indices, shape = sparse
        dense = torch.zeros(shape, dtype=values.dtype, device=values.device)
        dense[indices] = values
        return cls(sparse, dense)


@wrong("sparse_tensor", hint=".item()", description="from_sparse fills the dense tensor in a Python loop with .item(): jacrev cannot trace it")
class LoopWithItem(SparseTensor):
    @classmethod
    def from_sparse(cls, sparse: tuple) -> SparseTensor:
        values, indices, shape = sparse
        dense = torch.zeros(shape, dtype=values.dtype, device=values.device)
        for value, index in zip(values, indices.tolist()):
            dense[tuple(index)] = value.item()
        return cls(sparse, dense)


@wrong("sparse_tensor", hint="shape", description="the shape stored as the dense tensor's size in elements, not its shape")
class ShapeAsNumel(SparseTensor):
    @classmethod
    def from_dense(cls, dense: Tensor) -> SparseTensor:
        return cls((dense[dense > 0], torch.argwhere(dense > 0), (dense.numel(),)), dense)


# ---------------------------------------------------------------------------------------------
# Exercises 2-3: latent-to-latent gradients (residual-stream SAEs)
# ---------------------------------------------------------------------------------------------

wrong("latent_to_latent", hint="use_error_term", name="error_term_not_set", description="use_error_term not set: the later SAE's 'true' latents come from the earlier SAE's reconstruction")(
    learner.latent_to_latent(error_term="none")
)
wrong("latent_to_latent", hint="use_error_term", name="error_term_not_reset", description="sae.use_error_term = True, never set back")(
    learner.latent_to_latent(error_term="set_no_reset")
)
wrong("latent_to_latent", hint="start_at_layer", name="start_one_layer_late", description="start_at_layer = layer_from + 1")(
    learner.latent_to_latent(start=1)
)
wrong("latent_to_latent", hint="stop_at_layer", name="stop_one_layer_late", description="stop_at_layer = layer_to + 1 (one block too many)")(
    learner.latent_to_latent(stop=1)
)
wrong("latent_to_latent", hint="stop_at_layer", name="stop_one_layer_early", description="stop_at_layer = layer_to - 1 (one block too few)")(
    learner.latent_to_latent(stop=-1)
)
wrong("latent_to_latent", hint="sparse values", name="dense_jacobian", description="jacrev with respect to the dense latents: a column for every latent")(
    learner.latent_to_latent(dense_jacobian=True)
)
wrong("latent_to_latent", hint="transposed", name="transposed_jacobian", description="the Jacobian transposed: (earlier, later)")(
    learner.latent_to_latent(transpose=True)
)
# The model then fails inside the learner's own forward pass, with a shape error that names no exercise step.
wrong("latent_to_latent", hint="remove_batch_dim=False", name="batch_dim_removed", description="remove_batch_dim=True: activations without the batch dimension")(
    learner.latent_to_latent(remove_batch_dim=True)
)


@wrong("latent_to_latent", hint="left hooks", description="true latents read with caching hooks added by model.add_hook, never removed")
def leaked_cache_hook(tokens: Tensor, sae_from: SAE, sae_to: SAE, model: HookedSAETransformer) -> Any:
    seen: dict[str, Tensor] = {}

    def save(resid: Tensor, hook: Any) -> None:
        seen[hook.name] = resid.detach()

    for sae in (sae_from, sae_to):
        model.add_hook(sae.cfg.metadata.hook_name, save)
    with torch.no_grad():
        model(tokens, stop_at_layer=_get_hook_layer(sae_to) + 1)
    prev, next_true = (SparseTensor.from_dense(sae.encode(seen[sae.cfg.metadata.hook_name])) for sae in (sae_from, sae_to))

    def later_latents(values: Tensor, indices: Tensor, shape: tuple[int, ...]) -> Any:
        resid = sae_from.decode(learner.dense_of(values, indices, shape))
        dense = sae_to.encode(model(resid, start_at_layer=_get_hook_layer(sae_from), stop_at_layer=_get_hook_layer(sae_to)))
        return dense[dense > 0], (dense,)

    grads, (next_recon,) = torch.func.jacrev(later_latents, has_aux=True)(*prev.sparse)
    return grads, prev, next_true, SparseTensor.from_dense(next_recon)


@wrong("latent_to_latent", hint="attached", description="model.add_sae(...) to read the true latents, never reset")
def left_saes_attached(tokens: Tensor, sae_from: SAE, sae_to: SAE, model: HookedSAETransformer) -> Any:
    model.add_sae(sae_from, use_error_term=True)
    model.add_sae(sae_to, use_error_term=True)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=[learner.acts_name(sae_from), learner.acts_name(sae_to)])
    prev, next_true = (SparseTensor.from_dense(cache[learner.acts_name(sae)]) for sae in (sae_from, sae_to))
    model.reset_saes()
    model.add_sae(sae_from, use_error_term=True)  # "just in case" for later cells
    grads, _, _, next_recon = learner.latent_to_latent()(tokens, sae_from, sae_to, model)
    return grads, prev, next_true, next_recon


@wrong("latent_to_latent", hint="gradient computation", description="torch.set_grad_enabled(False) instead of a no_grad block")
def grad_mode_left_off(tokens: Tensor, sae_from: SAE, sae_to: SAE, model: HookedSAETransformer) -> Any:
    result = learner.latent_to_latent()(tokens, sae_from, sae_to, model)
    torch.set_grad_enabled(False)  # "no gradients for the caching in the next cell"
    return result


# ---------------------------------------------------------------------------------------------
# Token-to-latent gradients
# ---------------------------------------------------------------------------------------------

wrong("token_to_latent", hint="positional", name="scaled_before_positions", description="the token embeddings scaled before the positional ones are added", needs_positional_embeddings=True)(
    learner.token_to_latent(scale="token_only")
)
wrong("token_to_latent", hint="positional", name="positions_forgotten", description="model.embed(tokens) alone: no positional embeddings at all", needs_positional_embeddings=True)(
    learner.token_to_latent(scale="no_positions")
)
wrong("token_to_latent", hint="rearrange", name="not_permuted", description="jacrev's (n_active, batch, seq) returned as it is")(
    learner.token_to_latent(permute=False)
)
wrong("token_to_latent", hint="one scale per position", name="scale_per_dimension", description="a scale per embedding dimension, (batch, seq, d_model)")(
    learner.token_to_latent(per_dimension=True)
)
wrong("token_to_latent", hint="stop_at_layer", name="stop_one_layer_late", description="stop_at_layer = layer + 1 (one block too many)")(
    learner.token_to_latent(stop=1)
)
wrong("token_to_latent", hint="torch.ones", name="scales_at_zero", description="token_scales = torch.zeros(...): the Jacobian at the wrong point")(
    learner.token_to_latent(at=0.0)
)
wrong("token_to_latent", hint="active latents", name="dense_latents", description="the Jacobian of every latent, active or not")(
    learner.token_to_latent(dense_latents=True)
)

# ---------------------------------------------------------------------------------------------
# Latent-to-logit gradients
# ---------------------------------------------------------------------------------------------

wrong("latent_to_logit", hint="reconstructed logits", name="topk_of_recon", description="top-k taken from the reconstructed logits")(
    learner.latent_to_logit(topk_from="recon")
)
wrong("latent_to_logit", hint="final position", name="first_position", description="logits[0, 0]: the first position's logits")(
    learner.latent_to_logit(position=0)
)
wrong("latent_to_logit", hint="final position", name="second_to_last_position", description="logits[0, -2]: off by one position")(
    learner.latent_to_logit(position=-2)
)
wrong("latent_to_logit", hint="final position", name="every_position", description="logits[0]: every position's logits returned")(
    learner.latent_to_logit(keep_batch=True)
)
wrong("latent_to_logit", hint="use_error_term", name="error_term_not_set", description="use_error_term not set: the 'true' logits are the reconstructed ones")(
    learner.latent_to_logit(error_term="none")
)
wrong("latent_to_logit", hint="use_error_term", name="error_term_not_reset", description="sae.use_error_term = True, never set back")(
    learner.latent_to_logit(error_term="set_no_reset")
)
wrong("latent_to_logit", hint="highest logit first", name="token_ids_sorted", description="token ids sorted by id instead of by logit")(
    learner.latent_to_logit(token_ids_as="sorted")
)
wrong("latent_to_logit", hint=".tolist()", name="token_ids_tensor", description="token ids returned as a tensor")(
    learner.latent_to_logit(token_ids_as="tensor")
)
wrong("latent_to_logit", hint="top k of the true logits", name="bottom_k", description="argsort()[:k]: the k lowest logits, not the highest")(
    learner.latent_to_logit(token_ids_as="bottom")
)
wrong("latent_to_logit", hint="start_at_layer", name="start_one_layer_late", description="start_at_layer = layer + 1")(
    learner.latent_to_logit(start=1)
)
wrong("latent_to_logit", hint="transposed", name="transposed_jacobian", description="the Jacobian transposed: (n_active, k)")(
    learner.latent_to_logit(transpose=True)
)

# ---------------------------------------------------------------------------------------------
# Attention SAEs (induction)
# ---------------------------------------------------------------------------------------------

wrong("attention", hint="not replaced", name="clean_z_kept", description="the hook on the earlier hook_z returns z, not the reconstruction")(
    learner.attention(replace_z=False)
)
wrong("attention", hint="left hooks", name="hooks_left_on_model", description="model.add_hook for both hooks, never removed")(
    learner.attention(hooks="add_hook")
)
wrong("attention", hint="use_error_term", name="error_term_not_set", description="use_error_term not set: the later SAE reads the earlier one's reconstruction")(
    learner.attention(error_term="none")
)
wrong("attention", hint="use_error_term", name="error_term_not_reset", description="sae.use_error_term = True on both SAEs, never set back")(
    learner.attention(error_term="set_no_reset")
)
wrong("attention", hint="sparse values", name="dense_jacobian", description="jacrev with respect to the dense latents")(
    learner.attention(dense_jacobian=True)
)
wrong("attention", hint="stop_at_layer", name="stop_one_layer_early", description="stop_at_layer = layer_to: the later z is never computed")(
    learner.attention(stop=-1)
)
wrong("attention", hint="start_at_layer", name="start_one_layer_late", description="start_at_layer = layer_from + 1: the replaced z is skipped")(
    learner.attention(start=1)
)

# ---------------------------------------------------------------------------------------------
# The intermediate functions (their own, ungraded checks)
# ---------------------------------------------------------------------------------------------

wrong("latent_acts_to_later_latent_acts", hint="start_at_layer", name="start_one_layer_late", description="start_at_layer = layer_from + 1")(learner.later_latent_acts(start=1))
wrong("latent_acts_to_later_latent_acts", hint="stop_at_layer", name="stop_one_layer_late", description="stop_at_layer = layer_to + 1")(learner.later_latent_acts(stop=1))
wrong("latent_acts_to_later_latent_acts", hint="stop_at_layer", name="stop_one_layer_early", description="stop_at_layer = layer_to - 1")(learner.later_latent_acts(stop=-1))
wrong("latent_acts_to_later_latent_acts", hint="sparse[0]", name="dense_output", description="the dense tensor returned as the differentiated output")(learner.later_latent_acts(output="dense"))
wrong("latent_acts_to_later_latent_acts", hint="one-element tuple", name="aux_not_a_tuple", description="the dense tensor returned bare, not in a tuple")(learner.later_latent_acts(aux="bare"))
wrong("latent_acts_to_later_latent_acts", hint=".detach()", name="detached_reconstruction", description="sae_from.decode(...).detach(): right values, no gradient")(learner.later_latent_acts(detach=True))
wrong("tokens_to_latent_acts", hint="stop_at_layer", name="stop_one_layer_late", description="stop_at_layer = layer + 1")(learner.tokens_to_latent_acts(stop=1))
wrong("tokens_to_latent_acts", hint="an input you do not use", name="scales_unused", description="token_scales never applied: right values, zero Jacobian")(learner.tokens_to_latent_acts(use_scales=False))
wrong("tokens_to_latent_acts", hint="token_scales[..., None]", name="scales_not_broadcast", description="embeddings * token_scales, without a last axis")(learner.tokens_to_latent_acts(broadcast=False))
wrong("tokens_to_latent_acts", hint="sparse[0]", name="dense_output", description="the dense latents returned as the differentiated output")(learner.tokens_to_latent_acts(output="dense"))
wrong("tokens_to_latent_acts", hint=".detach()", name="detached", description="the scaled embeddings detached")(learner.tokens_to_latent_acts(detach=True))
wrong("latent_acts_to_logits", hint="position 0", name="first_position", description="the first position's logits")(learner.latent_acts_to_logits(position=0))
wrong("latent_acts_to_logits", hint="final position", name="second_to_last_position", description="logits at position -2")(learner.latent_acts_to_logits(position=-2))
wrong("latent_acts_to_logits", hint="start_at_layer", name="start_one_layer_late", description="start_at_layer = layer + 1")(learner.latent_acts_to_logits(start=1))
wrong("latent_acts_to_logits", hint="final position's logits only", name="every_position", description="every position's logits returned")(learner.latent_acts_to_logits(keep_positions=True))
wrong("latent_acts_to_logits", hint="logits_recon[token_ids]", name="token_ids_ignored", description="all logits differentiated, token_ids ignored")(learner.latent_acts_to_logits(select=False))
wrong("latent_acts_to_logits", hint=".detach()", name="detached_reconstruction", description="sae.decode(...).detach()")(learner.latent_acts_to_logits(detach=True))
wrong("latent_acts_to_later_latent_acts_attn", hint="not replaced", name="clean_z_kept", description="the replacing hook returns z")(learner.later_latent_acts_attn(replace_z=False))
wrong("latent_acts_to_later_latent_acts_attn", hint="never ran", name="stop_one_layer_early", description="stop_at_layer = layer_to: the later z is never computed")(learner.later_latent_acts_attn(stop=-1))
wrong("latent_acts_to_later_latent_acts_attn", hint="start_at_layer", name="start_one_layer_late", description="start_at_layer = layer_from + 1")(learner.later_latent_acts_attn(start=1))
wrong("latent_acts_to_later_latent_acts_attn", hint="z of layer", name="wrong_layer_z", description="the earlier layer's z recorded and encoded")(learner.later_latent_acts_attn(record_layer="from"))
wrong("latent_acts_to_later_latent_acts_attn", hint="hook name", name="hook_name_typo", description="blocks.L.hook_z (no attn.): a hook point that does not exist")(learner.later_latent_acts_attn(hook_name="typo"))
wrong("latent_acts_to_later_latent_acts_attn", hint=".detach()", name="detached_reconstruction", description="sae_from.decode(...).detach()")(learner.later_latent_acts_attn(detach=True))

# Mistakes in the intermediate functions, seen by the whole exercise's check.
wrong("latent_to_latent", hint=".detach()", name="detached_reconstruction", description="sae_from.decode(...).detach(): right activations, zero gradients")(
    learner.latent_to_latent(detach=True)
)
wrong("latent_to_logit", hint="final position", name="gradients_at_first_position", description="the differentiated logits are position 0's; the returned ones are right")(
    learner.latent_to_logit(grad_position=0)
)
wrong("attention", hint="z of layer", name="wrong_layer_z", description="the earlier layer's z recorded and encoded")(learner.attention(record_layer="from"))
wrong("attention", hint="names_filter", name="resid_pre_not_cached", description="resid_pre left out of names_filter: the cache has no entry for it")(
    learner.attention(resid_pre_in_cache=False)
)


# ---------------------------------------------------------------------------------------------
# Exercise 5b: attribution_and_ablation
# ---------------------------------------------------------------------------------------------

wrong("attribution", hint="error term", name="error_term_dropped", description="the SAE spliced in without its error term")(learner.attribution(error_term=False))
wrong("attribution", hint="never reached the model", name="not_spliced", description="the ablation hook added with no SAE attached: it never runs")(
    learner.attribution(spliced=False)
)
wrong("attribution", hint="every position", name="every_position", description="the latent ablated at every position, not only its own")(
    learner.attribution(positions="every")
)
wrong("attribution", hint="sign is flipped", name="sign_flipped", description="both signs flipped: ablated minus clean")(learner.attribution(sign=-1))
wrong("attribution", hint="raw logit", name="raw_logit", description="the answer's raw logit in place of the logit difference")(
    learner.attribution(metric="raw")
)
wrong("attribution", hint="activation - ablated value", name="times_activation", description="gradient x activation for mean-ablation too")(
    learner.attribution(estimate="activation")
)


# ---------------------------------------------------------------------------------------------
# Exercise 7 (capstone): latent_circuit
# ---------------------------------------------------------------------------------------------

wrong("latent_circuit", hint="raw gradients", name="raw_gradients", description="edge weights are the gradients, not gradient x activation")(
    learner.latent_circuit(weight="raw")
)
wrong("latent_circuit", hint="lost sign", name="abs_weights", description="a lost sign: |gradient x activation|")(learner.latent_circuit(sign="abs"))
wrong("latent_circuit", hint="lost sign", name="negated_weights", description="a lost sign: the weights negated")(
    learner.latent_circuit(sign="negate")
)
wrong("latent_circuit", hint="by |contribution|", name="signed_top_k", description="each layer's top k by signed contribution: the inhibitory latents dropped")(
    learner.latent_circuit(ranking="signed")
)
wrong("latent_circuit", hint="pruned forward", name="pruned_forward", description="pruning forward from the tokens instead of back from the logit")(
    learner.latent_circuit(prune="forward")
)
wrong("latent_circuit", hint="layers in the wrong order", name="layers_reversed", description="the layers walked from the last: tokens into the last layer")(
    learner.latent_circuit(layer_order="reversed")
)
