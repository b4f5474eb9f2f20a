"""Wrong learner solutions: small, realistic mistakes. Each must fail its check, and the message must
contain the entry's `hint` keyword (case-insensitive) where the mistake can be recognised."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor

from part_utils.hooks import _get_hook_layer
from solutions import SparseTensor

from . import learner
from . import wrong_entry as wrong


def built_wrong(exercise: str, build: Callable[..., Any], *mistakes: tuple[str, str, str, dict[str, Any]], needs_positional_embeddings: bool = False) -> None:
    """Register one wrong entry per mistake, (name, hint, description, options): the learner's function is
    `build(**options)`, one of `learner`'s parametrised solutions with that mistake made."""
    for name, hint, description, options in mistakes:
        wrong(exercise, hint=hint, name=name, description=description, needs_positional_embeddings=needs_positional_embeddings)(build(**options))


# ---------------------------------------------------------------------------------------------
# Exercise 1: SparseTensor
# ---------------------------------------------------------------------------------------------


def _from_dense_with(sparse_of: Callable[[Tensor], tuple]) -> type[SparseTensor]:
    """A SparseTensor whose from_dense stores `sparse_of(dense)` as its (values, indices, shape)."""

    class FromDense(SparseTensor):
        @classmethod
        def from_dense(cls, dense: Tensor) -> SparseTensor:
            return cls(sparse_of(dense), dense)

    return FromDense


def _from_sparse_with(new_dense: Callable[[Tensor, tuple], Tensor], fill: Callable[[Tensor, Tensor, Tensor], None]) -> type[SparseTensor]:
    """A SparseTensor whose from_sparse makes its dense tensor with `new_dense(values, shape)` and writes the
    values into it with `fill(dense, indices, values)`."""

    class FromSparse(SparseTensor):
        @classmethod
        def from_sparse(cls, sparse: tuple) -> SparseTensor:
            values, indices, shape = sparse
            dense = new_dense(values, shape)
            fill(dense, indices, values)
            return cls(sparse, dense)

    return FromSparse


def _zeros_like_values(values: Tensor, shape: tuple) -> Tensor:
    return torch.zeros(shape, dtype=values.dtype, device=values.device)


def _fill_unbound(dense: Tensor, indices: Tensor, values: Tensor) -> None:
    dense[indices.unbind(-1)] = values


def _fill_with_matrix(dense: Tensor, indices: Tensor, values: Tensor) -> None:
    dense[indices] = values


def _fill_with_item(dense: Tensor, indices: Tensor, values: Tensor) -> None:
    for value, index in zip(values, indices.tolist()):
        dense[tuple(index)] = value.item()


wrong("sparse_tensor", hint="dense > 0", name="NonzeroNotPositive", description="from_dense keeps every nonzero entry, negatives too (dense != 0)")(
    _from_dense_with(lambda dense: (dense[dense != 0], torch.argwhere(dense != 0), tuple(dense.shape)))
)
wrong("sparse_tensor", hint="squeezed", name="SqueezedIndices", description="indices squeezed: a single nonzero gives shape (k,), not (1, k)")(
    _from_dense_with(lambda dense: (dense[dense > 0], torch.argwhere(dense > 0).squeeze(), tuple(dense.shape)))
)
wrong("sparse_tensor", hint="zeros included", name="GreaterOrEqual", description="a sign slip: dense >= 0 keeps the zeros")(
    _from_dense_with(lambda dense: (dense[dense >= 0], torch.argwhere(dense >= 0), tuple(dense.shape)))
)
wrong("sparse_tensor", hint="reverse order", name="ReversedIndexColumns", description="index columns reversed (nonzero(as_tuple=True) stacked back to front)")(
    _from_dense_with(lambda dense: (dense[dense > 0], torch.stack((dense > 0).nonzero(as_tuple=True)[::-1], dim=-1), tuple(dense.shape)))
)
wrong("sparse_tensor", hint="same (row-major) order", name="SortedValues", description="values sorted largest first, so they no longer line up with the indices")(
    _from_dense_with(lambda dense: (dense[dense > 0].sort(descending=True).values, torch.argwhere(dense > 0), tuple(dense.shape)))
)
wrong("sparse_tensor", hint="dtype", name="LostDtype", description="from_sparse builds torch.zeros(shape): the values' dtype is lost")(
    _from_sparse_with(lambda values, shape: torch.zeros(shape, device=values.device), _fill_unbound)
)
wrong("sparse_tensor", hint="device", name="LostDevice", description="from_sparse builds torch.zeros(shape, dtype=...): the values' device is lost")(
    _from_sparse_with(lambda values, shape: torch.zeros(shape, dtype=values.dtype), _fill_unbound)
)
wrong("sparse_tensor", hint="unbind", name="IndexWithMatrix", description="from_sparse indexes with the (n, k) index matrix itself: dense[indices] = values")(
    _from_sparse_with(_zeros_like_values, _fill_with_matrix)
)
wrong("sparse_tensor", hint=".item()", name="LoopWithItem", description="from_sparse fills the dense tensor in a Python loop with .item(): jacrev cannot trace it")(
    _from_sparse_with(_zeros_like_values, _fill_with_item)
)
wrong("sparse_tensor", hint="shape", name="ShapeAsNumel", description="the shape stored as the dense tensor's size in elements, not its shape")(
    _from_dense_with(lambda dense: (dense[dense > 0], torch.argwhere(dense > 0), (dense.numel(),)))
)


# ---------------------------------------------------------------------------------------------
# Exercises 2-3: latent-to-latent gradients (residual-stream SAEs)
# ---------------------------------------------------------------------------------------------

built_wrong(
    "latent_to_latent", learner.latent_to_latent,
    ("error_term_not_set", "use_error_term", "use_error_term not set: the later SAE's 'true' latents come from the earlier SAE's reconstruction", dict(error_term="none")),
    ("error_term_not_reset", "use_error_term", "sae.use_error_term = True, never set back", dict(error_term="set_no_reset")),
    ("start_one_layer_late", "start_at_layer", "start_at_layer = layer_from + 1", dict(start=1)),
    ("stop_one_layer_late", "stop_at_layer", "stop_at_layer = layer_to + 1 (one block too many)", dict(stop=1)),
    ("stop_one_layer_early", "stop_at_layer", "stop_at_layer = layer_to - 1 (one block too few)", dict(stop=-1)),
    ("dense_jacobian", "sparse values", "jacrev with respect to the dense latents: a column for every latent", dict(dense_jacobian=True)),
    ("transposed_jacobian", "transposed", "the Jacobian transposed: (earlier, later)", dict(transpose=True)),
    # The model then fails inside the learner's own forward pass, with a shape error that names no exercise step.
    ("batch_dim_removed", "remove_batch_dim=False", "remove_batch_dim=True: activations without the batch dimension", dict(remove_batch_dim=True)),
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

built_wrong(
    "token_to_latent", learner.token_to_latent,
    ("scaled_before_positions", "positional", "the token embeddings scaled before the positional ones are added", dict(scale="token_only")),
    ("positions_forgotten", "positional", "model.embed(tokens) alone: no positional embeddings at all", dict(scale="no_positions")),
    needs_positional_embeddings=True,
)
built_wrong(
    "token_to_latent", learner.token_to_latent,
    ("not_permuted", "rearrange", "jacrev's (n_active, batch, seq) returned as it is", dict(permute=False)),
    ("scale_per_dimension", "one scale per position", "a scale per embedding dimension, (batch, seq, d_model)", dict(per_dimension=True)),
    ("stop_one_layer_late", "stop_at_layer", "stop_at_layer = layer + 1 (one block too many)", dict(stop=1)),
    ("scales_at_zero", "torch.ones", "token_scales = torch.zeros(...): the Jacobian at the wrong point", dict(at=0.0)),
    ("dense_latents", "active latents", "the Jacobian of every latent, active or not", dict(dense_latents=True)),
)

# ---------------------------------------------------------------------------------------------
# Latent-to-logit gradients
# ---------------------------------------------------------------------------------------------

built_wrong(
    "latent_to_logit", learner.latent_to_logit,
    ("topk_of_recon", "reconstructed logits", "top-k taken from the reconstructed logits", dict(topk_from="recon")),
    ("first_position", "final position", "logits[0, 0]: the first position's logits", dict(position=0)),
    ("second_to_last_position", "final position", "logits[0, -2]: off by one position", dict(position=-2)),
    ("every_position", "final position", "logits[0]: every position's logits returned", dict(keep_batch=True)),
    ("error_term_not_set", "use_error_term", "use_error_term not set: the 'true' logits are the reconstructed ones", dict(error_term="none")),
    ("error_term_not_reset", "use_error_term", "sae.use_error_term = True, never set back", dict(error_term="set_no_reset")),
    ("token_ids_sorted", "highest logit first", "token ids sorted by id instead of by logit", dict(token_ids_as="sorted")),
    ("token_ids_tensor", ".tolist()", "token ids returned as a tensor", dict(token_ids_as="tensor")),
    ("bottom_k", "top k of the true logits", "argsort()[:k]: the k lowest logits, not the highest", dict(token_ids_as="bottom")),
    ("start_one_layer_late", "start_at_layer", "start_at_layer = layer + 1", dict(start=1)),
    ("transposed_jacobian", "transposed", "the Jacobian transposed: (n_active, k)", dict(transpose=True)),
)

# ---------------------------------------------------------------------------------------------
# Attention SAEs (induction)
# ---------------------------------------------------------------------------------------------

built_wrong(
    "attention", learner.attention,
    ("clean_z_kept", "not replaced", "the hook on the earlier hook_z returns z, not the reconstruction", dict(replace_z=False)),
    ("hooks_left_on_model", "left hooks", "model.add_hook for both hooks, never removed", dict(hooks="add_hook")),
    ("error_term_not_set", "use_error_term", "use_error_term not set: the later SAE reads the earlier one's reconstruction", dict(error_term="none")),
    ("error_term_not_reset", "use_error_term", "sae.use_error_term = True on both SAEs, never set back", dict(error_term="set_no_reset")),
    ("dense_jacobian", "sparse values", "jacrev with respect to the dense latents", dict(dense_jacobian=True)),
    ("stop_one_layer_early", "stop_at_layer", "stop_at_layer = layer_to: the later z is never computed", dict(stop=-1)),
    ("start_one_layer_late", "start_at_layer", "start_at_layer = layer_from + 1: the replaced z is skipped", dict(start=1)),
)

# ---------------------------------------------------------------------------------------------
# The intermediate functions (their own, ungraded checks)
# ---------------------------------------------------------------------------------------------

built_wrong(
    "latent_acts_to_later_latent_acts", learner.later_latent_acts,
    ("start_one_layer_late", "start_at_layer", "start_at_layer = layer_from + 1", dict(start=1)),
    ("stop_one_layer_late", "stop_at_layer", "stop_at_layer = layer_to + 1", dict(stop=1)),
    ("stop_one_layer_early", "stop_at_layer", "stop_at_layer = layer_to - 1", dict(stop=-1)),
    ("dense_output", "sparse[0]", "the dense tensor returned as the differentiated output", dict(output="dense")),
    ("aux_not_a_tuple", "one-element tuple", "the dense tensor returned bare, not in a tuple", dict(aux="bare")),
    ("detached_reconstruction", ".detach()", "sae_from.decode(...).detach(): right values, no gradient", dict(detach=True)),
)
built_wrong(
    "tokens_to_latent_acts", learner.tokens_to_latent_acts,
    ("stop_one_layer_late", "stop_at_layer", "stop_at_layer = layer + 1", dict(stop=1)),
    ("scales_unused", "an input you do not use", "token_scales never applied: right values, zero Jacobian", dict(use_scales=False)),
    ("scales_not_broadcast", "token_scales[..., None]", "embeddings * token_scales, without a last axis", dict(broadcast=False)),
    ("dense_output", "sparse[0]", "the dense latents returned as the differentiated output", dict(output="dense")),
    ("detached", ".detach()", "the scaled embeddings detached", dict(detach=True)),
)
built_wrong(
    "latent_acts_to_logits", learner.latent_acts_to_logits,
    ("first_position", "position 0", "the first position's logits", dict(position=0)),
    ("second_to_last_position", "final position", "logits at position -2", dict(position=-2)),
    ("start_one_layer_late", "start_at_layer", "start_at_layer = layer + 1", dict(start=1)),
    ("every_position", "final position's logits only", "every position's logits returned", dict(keep_positions=True)),
    ("token_ids_ignored", "logits_recon[token_ids]", "all logits differentiated, token_ids ignored", dict(select=False)),
    ("detached_reconstruction", ".detach()", "sae.decode(...).detach()", dict(detach=True)),
)
built_wrong(
    "latent_acts_to_later_latent_acts_attn", learner.later_latent_acts_attn,
    ("clean_z_kept", "not replaced", "the replacing hook returns z", dict(replace_z=False)),
    ("stop_one_layer_early", "never ran", "stop_at_layer = layer_to: the later z is never computed", dict(stop=-1)),
    ("start_one_layer_late", "start_at_layer", "start_at_layer = layer_from + 1", dict(start=1)),
    ("wrong_layer_z", "z of layer", "the earlier layer's z recorded and encoded", dict(record_layer="from")),
    ("hook_name_typo", "hook name", "blocks.L.hook_z (no attn.): a hook point that does not exist", dict(hook_name="typo")),
    ("detached_reconstruction", ".detach()", "sae_from.decode(...).detach()", dict(detach=True)),
)
# Mistakes in the intermediate functions, seen by the whole exercise's check.
built_wrong(
    "latent_to_latent", learner.latent_to_latent,
    ("detached_reconstruction", ".detach()", "sae_from.decode(...).detach(): right activations, zero gradients", dict(detach=True)),
)
built_wrong(
    "latent_to_logit", learner.latent_to_logit,
    ("gradients_at_first_position", "final position", "the differentiated logits are position 0's; the returned ones are right", dict(grad_position=0)),
)
built_wrong(
    "attention", learner.attention,
    ("wrong_layer_z", "z of layer", "the earlier layer's z recorded and encoded", dict(record_layer="from")),
    ("resid_pre_not_cached", "names_filter", "resid_pre left out of names_filter: the cache has no entry for it", dict(resid_pre_in_cache=False)),
)


# ---------------------------------------------------------------------------------------------
# Exercise 5b: attribution_and_ablation
# ---------------------------------------------------------------------------------------------

built_wrong(
    "attribution", learner.attribution,
    ("error_term_dropped", "error term", "the SAE spliced in without its error term", dict(error_term=False)),
    ("not_spliced", "never reached the model", "the ablation hook added with no SAE attached: it never runs", dict(spliced=False)),
    ("every_position", "every position", "the latent ablated at every position, not only its own", dict(positions="every")),
    ("sign_flipped", "sign is flipped", "both signs flipped: ablated minus clean", dict(sign=-1)),
    ("raw_logit", "raw logit", "the answer's raw logit in place of the logit difference", dict(metric="raw")),
    ("times_activation", "activation - ablated value", "gradient x activation for mean-ablation too", dict(estimate="activation")),
)


# ---------------------------------------------------------------------------------------------
# Exercise 7 (capstone): latent_circuit
# ---------------------------------------------------------------------------------------------

built_wrong(
    "latent_circuit", learner.latent_circuit,
    ("raw_gradients", "raw gradients", "edge weights are the gradients, not gradient x activation", dict(weight="raw")),
    ("abs_weights", "lost sign", "a lost sign: |gradient x activation|", dict(sign="abs")),
    ("negated_weights", "lost sign", "a lost sign: the weights negated", dict(sign="negate")),
    ("signed_top_k", "by |contribution|", "each layer's top k by signed contribution: the inhibitory latents dropped", dict(ranking="signed")),
    ("pruned_forward", "pruned forward", "pruning forward from the tokens instead of back from the logit", dict(prune="forward")),
    ("layers_reversed", "layers in the wrong order", "the layers walked from the last: tokens into the last layer", dict(layer_order="reversed")),
)
