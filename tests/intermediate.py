"""Learner checks for the four intermediate functions, each called right under the function it checks.

`latent_acts_to_later_latent_acts`, `tokens_to_latent_acts`, `latent_acts_to_logits` and
`latent_acts_to_later_latent_acts_attn` are what the gradient exercises differentiate. Each check
gives the learner's function and the reference the same inputs (this world's prompt, layers and
true activations), compares both outputs, then differentiates **through the learner's function**
with `torch.func.jacrev` and compares that Jacobian with the reference's, so a function whose values
are right but whose graph is broken (a `.detach()`, a round trip through Python numbers) is caught
where the mistake is made. Like every check, it leaves the model and SAEs as it found them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor
from transformer_lens.utilities import get_act_name

import solutions
from part_utils.hooks import _get_hook_layer
from tests._exercise import _also_changed, layer_pair_inputs, left_a_trace, one_layer_inputs
from tests._report import (
    HINT_BROKEN_GRAPH,
    CheckFailed,
    call_learner,
    close_enough,
    compare_tensor,
    fmt_seconds,
    passed,
    shape_of,
)
from tests._state import preserved_state
from tests.attention import exception_hint_for_hooks
from tests.latent_to_latent import HINT_LAYERS

HINT_VALUES = (
    "The first output is what jacrev differentiates: the values of the active entries only, "
    "SparseTensor.from_dense(dense).sparse[0]; the dense tensor goes in the one-element tuple."
)
HINT_AUX = "Return the dense tensor in a one-element tuple, `(dense,)`: jacrev(..., has_aux=True) passes it through."


def _true_sae_acts(model: HookedSAETransformer, tokens: Tensor, sae: SAE, extra: Sequence[str] = ()) -> tuple[Any, dict]:
    """The SAE's true activations on `tokens` as a SparseTensor, and the clean cache of `extra` hooks."""
    hook = sae.cfg.metadata.hook_name
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=[hook, *extra], stop_at_layer=_get_hook_layer(sae) + 1)
        return solutions.SparseTensor.from_dense(sae.encode(cache[hook])), cache


def _structure(exercise: str, got: Any) -> tuple[Any, Any]:
    """(differentiated output, aux tensor) of a `(output, (aux,))` result, or a CheckFailed naming what is off."""
    if not isinstance(got, tuple) or len(got) != 2:
        length = f"a tuple of {len(got)}" if isinstance(got, tuple) else f"a {shape_of(got)}"
        raise CheckFailed(exercise, f"your function should return (values, (dense,)), a tuple of 2, but it returned {length}.", HINT_AUX)
    output, aux = got
    if isinstance(aux, Tensor) or not isinstance(aux, (tuple, list)) or len(aux) != 1:
        raise CheckFailed(exercise, f"the second output should be a one-element tuple, but it is a {shape_of(aux)}.", HINT_AUX)
    return output, aux[0]


# How many random directions the Jacobian is probed in (see `jacobian_probes`).
N_PROBES = 3


def jacobian_probes(fn: Callable[..., Any], args: Sequence[Any], n_outputs: int) -> Tensor:
    """(N_PROBES, *first_argument.shape): v @ J for seeded random vectors v, J the Jacobian of fn's first output
    with respect to its first argument.

    Two Jacobians that differ anywhere give different products with a random v (with probability 1),
    and each product costs one backward pass, where the whole Jacobian costs one per output (hundreds).
    """
    first, rest = args[0], tuple(args[1:])
    generator = torch.Generator().manual_seed(0)
    directions = torch.randn(N_PROBES, n_outputs, generator=generator).to(first.device)
    _, pullback, _ = torch.func.vjp(lambda x: fn(x, *rest), first, has_aux=True)
    return torch.stack([pullback(direction.to(first.dtype))[0] for direction in directions])


def reference_results(reference: Callable[..., Any], args: Sequence[Any]) -> tuple[Tensor, Tensor, Tensor]:
    """(differentiated output, aux tensor, Jacobian probes as in `jacobian_probes`) of the reference."""
    output, (aux,) = reference(*args)
    return output, aux, jacobian_probes(reference, args, output.numel())


def run_intermediate_check(
    exercise: str,
    fn: Any,
    reference: Callable[..., Any],
    args: Sequence[Any],
    model: HookedSAETransformer,
    saes: Sequence[SAE],
    names: tuple[str, str],
    diagnose: Callable[[Any, Any], str | None],
    exception_hint: Callable[[BaseException], str | None] | None = None,
    values_hint: str = HINT_VALUES,
) -> None:
    """Compare `fn(*args)` with `reference(*args)`, both outputs, then the Jacobian through `fn` (argnums=0).

    `names` names the two outputs in messages; `diagnose(got_output, got_aux)` names a known mistake
    behind wrong outputs, or returns None.
    """
    if not callable(fn):
        raise CheckFailed(exercise, f"the first argument should be your function, but it is a {shape_of(fn)}.")
    start = time.perf_counter()
    with torch.enable_grad(), preserved_state(model, saes):
        want_output, want_aux, want_jacobian = reference_results(reference, args)

    def learner(call: Callable[..., Any]) -> Any:
        with torch.enable_grad(), preserved_state(model, saes) as changes:
            try:
                result = call_learner(exercise, call, *args)
            except CheckFailed as failure:
                hint = failure.hint
                if hint is None and failure.learner_error is not None and exception_hint is not None:
                    hint = exception_hint(failure.learner_error)
                raise _also_changed(CheckFailed(exercise, failure.message, hint), changes) from None
        return result, changes

    got, changes = learner(fn)
    try:
        output, aux = _structure(exercise, got)
        hint = None if close_enough(aux, want_aux) and close_enough(output, want_output) else diagnose(output, aux)
        compare_tensor(exercise, names[1], aux, want_aux, hint)
        if isinstance(output, Tensor) and output.shape == want_aux.shape and output.shape != want_output.shape:
            raise CheckFailed(exercise, f"{names[0]} has shape {shape_of(output)}, the dense shape; it should be {shape_of(want_output)}.", values_hint)
        compare_tensor(exercise, names[0], output, want_output, hint or values_hint)
    except CheckFailed as failure:
        raise _also_changed(failure, changes) from None

    if changes:
        # Fix the state first: a function that changes the model (grad mode, SAEs, hooks) cannot run inside
        # the transforms the Jacobian needs either.
        raise left_a_trace(exercise, changes)
    probes, probe_changes = learner(lambda *args: jacobian_probes(fn, args, want_output.numel()))
    try:
        compare_tensor(
            exercise, f"the Jacobian of {names[0]} through your function (its products with {N_PROBES} random vectors)",
            probes, want_jacobian, HINT_BROKEN_GRAPH,
        )
    except CheckFailed as failure:
        raise _also_changed(failure, probe_changes) from None
    passed(
        exercise,
        f"both outputs, and the Jacobian through your function ({want_output.numel()} x {args[0].numel()}, probed in "
        f"{N_PROBES} random directions), match the reference "
        f"({fmt_seconds(time.perf_counter() - start)} for your function and the reference)",
    )


# ---------------------------------------------------------------------------------------------
# Exercise 2: latent_acts_to_later_latent_acts
# ---------------------------------------------------------------------------------------------


def test_latent_acts_to_later_latent_acts(
    latent_acts_to_later_latent_acts: Any, model: HookedSAETransformer, saes: Mapping[int, SAE], *,
    prompt: str | None = None, layer_from: int | None = None, layer_to: int | None = None,
) -> None:
    """Check latent_acts_to_later_latent_acts on the earlier SAE's true activations for this world's prompt."""
    exercise = "test_latent_acts_to_later_latent_acts"
    settings, sae_from, sae_to = layer_pair_inputs(model, saes, "latent_to_latent", prompt=prompt, layer_from=layer_from, layer_to=layer_to)
    prev, _ = _true_sae_acts(model, model.to_tokens(settings.prompt), sae_from)
    right = (_get_hook_layer(sae_from), _get_hook_layer(sae_to))

    @torch.no_grad()
    def diagnose(output: Any, dense: Any) -> str | None:
        resid = sae_from.decode(prev.dense)
        for start in (right[0] - 1, right[0], right[0] + 1):
            for stop in (right[1] - 1, right[1], right[1] + 1):
                if (start, stop) != right and 0 <= start < stop <= model.cfg.n_layers:
                    if close_enough(dense, sae_to.encode(model(resid, start_at_layer=start, stop_at_layer=stop))):
                        return f"Your output matches start_at_layer={start}, stop_at_layer={stop}; they should be {right[0]} and {right[1]}. " + HINT_LAYERS
        if close_enough(dense, sae_to.encode(model(resid, start_at_layer=right[0], stop_at_layer=right[1]))[0]):
            return "The batch dimension is missing: keep the shape (batch, seq, d_sae) of the input."
        if close_enough(dense, sae_to.encode(model(resid * 0 + sae_from.b_dec, start_at_layer=right[0], stop_at_layer=right[1]))):
            return "Your output does not depend on the latent values: decode the dense latents built from all three sparse arguments."
        return None

    run_intermediate_check(
        exercise, latent_acts_to_later_latent_acts, solutions.latent_acts_to_later_latent_acts, (*prev.sparse, sae_from, sae_to, model), model, (sae_from, sae_to),
        ("the values of the later latents (first output)", "the dense later latents (in the second output)"), diagnose,
    )


# ---------------------------------------------------------------------------------------------
# Exercise 4: tokens_to_latent_acts
# ---------------------------------------------------------------------------------------------


def test_tokens_to_latent_acts(
    tokens_to_latent_acts: Any, model: HookedSAETransformer, saes: Mapping[int, SAE], *, prompt: str | None = None, layer: int | None = None
) -> None:
    """Check tokens_to_latent_acts at token_scales = 1 on this world's prompt and layer, Jacobian included."""
    exercise = "test_tokens_to_latent_acts"
    _, sae, tokens = one_layer_inputs(model, saes, "token_to_latent", prompt=prompt, layer=layer)
    scales = torch.ones(tokens.shape, device=tokens.device)
    hook_layer = _get_hook_layer(sae)

    @torch.no_grad()
    def diagnose(output: Any, dense: Any) -> str | None:
        embeddings = model(tokens, stop_at_layer=0)
        for stop in (hook_layer - 1, hook_layer + 1):
            if 0 <= stop <= model.cfg.n_layers and close_enough(dense, sae.encode(model(embeddings, start_at_layer=0, stop_at_layer=stop))):
                return (
                    f"Your latents match stop_at_layer={stop}; it should be {hook_layer}: an SAE on "
                    f"blocks.{hook_layer}.hook_resid_pre reads the input of block {hook_layer}."
                )
        if model.cfg.positional_embedding_type == "standard" and close_enough(
            dense, sae.encode(model(model.embed(tokens), start_at_layer=0, stop_at_layer=hook_layer))
        ):
            return "Your latents come from the token embeddings alone: model(tokens, stop_at_layer=0) gives token plus positional embeddings."
        return None

    def exception_hint(error: BaseException) -> str | None:
        if isinstance(error, RuntimeError) and "size" in str(error) and "match" in str(error):
            return "token_scales is (batch, seq): give it a last axis to scale every embedding dimension alike, token_scales[..., None]."
        return None

    run_intermediate_check(
        exercise, tokens_to_latent_acts, solutions.tokens_to_latent_acts, (scales, tokens, sae, model), model, (sae,),
        ("the values of the active latents (first output)", "the dense latents (in the second output)"), diagnose, exception_hint,
    )


# ---------------------------------------------------------------------------------------------
# Exercise 5: latent_acts_to_logits
# ---------------------------------------------------------------------------------------------


def test_latent_acts_to_logits(
    latent_acts_to_logits: Any, model: HookedSAETransformer, saes: Mapping[int, SAE], *, prompt: str | None = None, layer: int | None = None, k: int | None = None
) -> None:
    """Check latent_acts_to_logits on the SAE's true activations and the top-k token ids of this world's prompt."""
    exercise = "test_latent_acts_to_logits"
    settings, sae, tokens = one_layer_inputs(model, saes, "latent_to_logit", prompt=prompt, layer=layer, k=k)
    k = settings.k
    acts, _ = _true_sae_acts(model, tokens, sae)
    with torch.no_grad():
        token_ids = model(tokens)[0, -1].topk(k).indices.tolist()
    hook_layer = _get_hook_layer(sae)

    @torch.no_grad()
    def diagnose(output: Any, all_logits: Any) -> str | None:
        if isinstance(all_logits, Tensor) and all_logits.ndim > 1:
            return "Return the final position's logits only, shape (d_vocab,): index the model's output with [0, -1]."
        resid = sae.decode(acts.dense)
        recon = model(resid, start_at_layer=hook_layer)[0]
        for position in range(recon.shape[0] - 1):
            if close_enough(all_logits, recon[position]):
                return f"These are the logits at position {position}; the gradients are for the final position's: [0, -1]."
        for start in (hook_layer - 1, hook_layer + 1):
            if 0 <= start <= model.cfg.n_layers and close_enough(all_logits, model(resid, start_at_layer=start)[0, -1]):
                return f"Your logits match start_at_layer={start}; it should be {hook_layer}: the SAE reconstructs the input of block {hook_layer}."
        if close_enough(all_logits, model(tokens)[0, -1]):
            return "These are the clean model's logits: run the model from the SAE's reconstruction, sae.decode(...), with start_at_layer."
        return None

    run_intermediate_check(
        exercise, latent_acts_to_logits, solutions.latent_acts_to_logits, (*acts.sparse, sae, model, token_ids), model, (sae,),
        ("the logits of token_ids (first output)", "the final position's logits (in the second output)"), diagnose,
        values_hint="The first output is what jacrev differentiates: the logits of `token_ids` only, logits_recon[token_ids].",
    )


# ---------------------------------------------------------------------------------------------
# Exercise 6: latent_acts_to_later_latent_acts_attn
# ---------------------------------------------------------------------------------------------

def test_latent_acts_to_later_latent_acts_attn(
    latent_acts_to_later_latent_acts_attn: Any, model: HookedSAETransformer, attn_saes: Mapping[int, SAE], *,
    seed: int = 0, layer_from: int | None = None, layer_to: int | None = None,
) -> None:
    """Check latent_acts_to_later_latent_acts_attn on this world's repeated random sequence, Jacobian included."""
    exercise = "test_latent_acts_to_later_latent_acts_attn"
    settings, sae_from, sae_to = layer_pair_inputs(model, attn_saes, "attention", layer_from=layer_from, layer_to=layer_to)
    tokens = settings.repeated_tokens(model, seed)
    l_from, l_to = _get_hook_layer(sae_from), _get_hook_layer(sae_to)
    resid_pre_name = get_act_name("resid_pre", l_from)
    prev, cache = _true_sae_acts(model, tokens, sae_from, extra=(resid_pre_name,))
    resid_pre = cache[resid_pre_name]

    @torch.no_grad()
    def later_latents(start: int, replace: bool) -> Tensor:
        """The later SAE's latents on a run from the clean resid_pre entering block `start`."""
        z_recon = sae_from.decode(prev.dense)
        recorded: list[Tensor] = []
        hooks = [(get_act_name("z", l_from), lambda z, hook: z_recon)] if replace else []
        hooks.append((get_act_name("z", l_to), lambda z, hook: recorded.append(z)))
        model.run_with_hooks(resid_pre, start_at_layer=start, stop_at_layer=l_to + 1, fwd_hooks=hooks)
        return sae_to.encode(recorded[-1])

    @torch.no_grad()
    def diagnose(output: Any, dense: Any) -> str | None:
        if close_enough(dense, later_latents(l_from, replace=False)):
            return (
                "Your later latents are the clean ones: the earlier layer's z was not replaced. The hook on "
                f"get_act_name('z', {l_from}) must return the earlier SAE's reconstruction."
            )
        if l_from + 1 <= l_to and close_enough(dense, later_latents(l_from + 1, replace=True)):
            return (
                f"Your later latents match start_at_layer={l_from + 1}; it should be {l_from}, the layer whose z the "
                "earlier SAE reconstructs (the forward pass starts from the residual stream entering that layer)."
            )
        if close_enough(dense, sae_to.encode(sae_from.decode(prev.dense))):
            return (
                f"Your later SAE encoded the z of layer {l_from} (the reconstruction itself): record the z of the "
                f"later layer, get_act_name('z', {l_to}), and encode that."
            )
        return None

    def exception_hint(error: BaseException) -> str | None:
        return exception_hint_for_hooks(error, l_to, model)

    run_intermediate_check(
        exercise, latent_acts_to_later_latent_acts_attn, solutions.latent_acts_to_later_latent_acts_attn, (*prev.sparse, sae_from, sae_to, model, resid_pre), model, (sae_from, sae_to),
        ("the values of the later latents (first output)", "the dense later latents (in the second output)"), diagnose, exception_hint,
    )


for _check in (test_latent_acts_to_later_latent_acts, test_tokens_to_latent_acts, test_latent_acts_to_logits, test_latent_acts_to_later_latent_acts_attn):
    _check.__test__ = False  # learner checks, not tests of this project
