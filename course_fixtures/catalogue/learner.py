"""Learner-style solutions with a knob per choice a learner makes: the catalogues turn one knob each.

Each maker returns a function with the exercise's signature, written the way the course's
instructions lead a learner to write it (dense `sae.decode` / `sae.encode`, `torch.func.jacrev`,
`run_with_cache_with_saes`). With every knob at its default the function is correct.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import einops
import torch
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor
from transformer_lens.utilities import get_act_name

from part_utils.hooks import _get_hook_layer
from solutions import SparseTensor


def acts_name(sae: SAE) -> str:
    return f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post"


def true_latents(
    tokens: Tensor,
    saes: list[SAE],
    model: HookedSAETransformer,
    *,
    error_term: str = "argument",
    how: str = "splice",
    remove_batch_dim: bool = False,
    extra_names: tuple[str, ...] = (),
) -> tuple[Tensor, list[SparseTensor], dict[str, Tensor]]:
    """(logits, [SparseTensor of each SAE's latents], cache) with no gradients.

    error_term: "argument" (use_error_term=True to run_with_cache_with_saes), "none" (forgotten),
    "set_and_reset" (set on the SAEs, put back in a finally), "set_no_reset" (set, never put back).
    how: "splice" (run_with_cache_with_saes) or "plain_cache" (run_with_cache, then sae.encode).
    """
    names = [acts_name(sae) for sae in saes]
    with torch.no_grad():
        if how == "plain_cache":
            logits, cache = model.run_with_cache(
                tokens, names_filter=[*(sae.cfg.metadata.hook_name for sae in saes), *extra_names]
            )
            latents = [sae.encode(cache[sae.cfg.metadata.hook_name]) for sae in saes]
        else:
            kwargs: dict[str, Any] = {"use_error_term": True} if error_term == "argument" else {}
            if error_term.startswith("set"):
                for sae in saes:
                    sae.use_error_term = True
            try:
                logits, cache = model.run_with_cache_with_saes(
                    tokens, saes=saes, names_filter=[*names, *extra_names], remove_batch_dim=remove_batch_dim, **kwargs
                )
            finally:
                if error_term == "set_and_reset":
                    for sae in saes:
                        sae.use_error_term = False
            latents = [cache[name] for name in names]
    return logits, [SparseTensor.from_dense(dense) for dense in latents], cache


def dense_of(values: Tensor, indices: Tensor, shape: tuple[int, ...]) -> Tensor:
    return SparseTensor.from_sparse((values, indices, shape)).dense


def latent_to_latent(
    *,
    error_term: str = "argument",
    how: str = "splice",
    start: int = 0,
    stop: int = 0,
    dense_jacobian: bool = False,
    transpose: bool = False,
    jacobian: Callable[..., Any] = torch.func.jacrev,
    remove_batch_dim: bool = False,
    decode: str = "sae",
    detach: bool = False,
) -> Callable[..., Any]:
    """`start` / `stop` are off-by-one errors added to start_at_layer / stop_at_layer."""

    def latent_to_latent_gradients(tokens: Tensor, sae_from: SAE, sae_to: SAE, model: HookedSAETransformer):
        def later_latents(values: Tensor, indices: Tensor, shape: tuple[int, ...]):
            dense = dense_of(values, indices, shape)
            if decode == "sae":
                resid = sae_from.decode(dense)
            else:  # by hand: the decoder matrix, then its bias
                resid = einops.einsum(dense, sae_from.W_dec, "b s l, l d -> b s d") + sae_from.b_dec
            if detach:
                resid = resid.detach()
            resid = model(
                resid,
                start_at_layer=_get_hook_layer(sae_from) + start,
                stop_at_layer=_get_hook_layer(sae_to) + stop,
            )
            later = SparseTensor.from_dense(sae_to.encode(resid))
            return later.sparse[0], (later.dense,)

        _, (prev, next_true), _ = true_latents(
            tokens, [sae_from, sae_to], model, error_term=error_term, how=how, remove_batch_dim=remove_batch_dim
        )
        if dense_jacobian:
            grads, (next_recon,) = jacobian(lambda dense: later_latents(*SparseTensor.from_dense(dense).sparse), has_aux=True)(prev.dense)
        else:
            grads, (next_recon,) = jacobian(later_latents, has_aux=True)(*prev.sparse)
        if transpose:
            grads = grads.T
        return grads, prev, next_true, SparseTensor.from_dense(next_recon)

    return latent_to_latent_gradients


def token_to_latent(
    *,
    scale: str = "sum",
    stop: int = 0,
    permute: bool = True,
    per_dimension: bool = False,
    at: float = 1.0,
    jacobian: Callable[..., Any] = torch.func.jacrev,
    dense_latents: bool = False,
) -> Callable[..., Any]:
    """scale: "sum" (scale token + positional embeddings), "token_only" (scale W_E rows, then add
    positions), "einsum" (the sum, scaled with an einsum), "no_positions" (positions forgotten)."""

    def token_to_latent_gradients(tokens: Tensor, sae: SAE, model: HookedSAETransformer):
        def latents(scales: Tensor):
            if scale == "token_only":
                resid = model.embed(tokens) * scales[..., None] + model.pos_embed(tokens)
            elif scale == "no_positions":
                resid = model.embed(tokens) * scales[..., None]
            elif scale == "einsum":
                resid = torch.einsum("bsd,bs->bsd", model(tokens, stop_at_layer=0), scales)
            else:
                resid = model(tokens, stop_at_layer=0) * (scales if per_dimension else scales[..., None])
            dense = sae.encode(model(resid, start_at_layer=0, stop_at_layer=_get_hook_layer(sae) + stop))
            if dense_latents:
                return dense, (dense,)
            later = SparseTensor.from_dense(dense)
            return later.sparse[0], (later.dense,)

        shape = (*tokens.shape, model.cfg.d_model) if per_dimension else tokens.shape
        scales = torch.full(shape, at, device=tokens.device)
        grads, (dense,) = jacobian(latents, has_aux=True)(scales)
        if permute and not dense_latents:
            grads = grads.permute(1, 2, 0) if grads.ndim == 3 else grads.permute(1, 2, 3, 0)
        return grads, SparseTensor.from_dense(dense)

    return token_to_latent_gradients


def latent_to_logit(
    *,
    error_term: str = "argument",
    how: str = "splice",
    position: int = -1,
    topk_from: str = "true",
    token_ids_as: str = "list",
    start: int = 0,
    transpose: bool = False,
    keep_batch: bool = False,
    jacobian: Callable[..., Any] = torch.func.jacrev,
    unembed: str = "model",
    grad_position: int | None = None,
) -> Callable[..., Any]:
    """`grad_position`: the position whose logits are differentiated, when it differs from `position`."""

    def latent_to_logit_gradients(tokens: Tensor, sae: SAE, model: HookedSAETransformer, k: int | None = None):
        logits_all, (acts,), _ = true_latents(tokens, [sae], model, error_term=error_term, how=how)
        logits = logits_all[0, position]

        def final_logits(values: Tensor, indices: Tensor, shape: tuple[int, ...], token_ids: Any):
            resid = sae.decode(dense_of(values, indices, shape))
            if unembed == "model":
                out = model(resid, start_at_layer=_get_hook_layer(sae) + start)[0, position]
            else:  # the final layer norm and unembedding by hand, final position only
                final = model(resid, start_at_layer=_get_hook_layer(sae) + start, stop_at_layer=model.cfg.n_layers)
                out = model.unembed(model.ln_final(final))[0, position]
            differentiated = out if grad_position is None else model(resid, start_at_layer=_get_hook_layer(sae) + start)[0, grad_position]
            chosen = differentiated if token_ids is None else differentiated[token_ids]
            return chosen, (out,)

        if token_ids_as == "bottom":
            token_ids = logits.argsort()[:k]
        elif topk_from == "true":
            token_ids = logits.topk(k).indices
        else:  # the reconstructed logits: one forward pass first
            with torch.no_grad():
                _, (recon,) = final_logits(*acts.sparse, None)
            token_ids = recon.topk(k).indices
        token_ids = token_ids.tolist() if token_ids_as in ("list", "bottom") else (sorted(token_ids.tolist()) if token_ids_as == "sorted" else token_ids)
        grads, (logits_recon,) = jacobian(final_logits, has_aux=True)(*acts.sparse, token_ids)
        if transpose:
            grads = grads.T
        if keep_batch:
            logits, logits_recon = logits_all[0], logits_recon[None]
        return grads, logits, logits_recon, token_ids, acts

    return latent_to_logit_gradients


def attention(
    *,
    error_term: str = "argument",
    how: str = "splice",
    replace_z: bool = True,
    hooks: str = "run_with_hooks",
    start: int = 0,
    stop: int = 0,
    dense_jacobian: bool = False,
    jacobian: Callable[..., Any] = torch.func.jacrev,
    record_layer: str = "to",
    resid_pre_in_cache: bool = True,
) -> Callable[..., Any]:
    """record_layer: "to" (right) or "from" (the earlier layer's z); resid_pre_in_cache: False leaves it out of names_filter.
    hooks: "run_with_hooks", "context" (model.hooks), "ctx" (store z in hook.ctx), "add_hook" (model.add_hook, never removed)."""

    def latent_to_latent_gradients_attn(tokens: Tensor, sae_from: SAE, sae_to: SAE, model: HookedSAETransformer):
        layer_from, layer_to = _get_hook_layer(sae_from), _get_hook_layer(sae_to)
        resid_pre_name = get_act_name("resid_pre", layer_from)
        z_from, z_to = get_act_name("z", layer_from), get_act_name("z", layer_to if record_layer == "to" else layer_from)

        def later_latents(values: Tensor, indices: Tensor, shape: tuple[int, ...], resid_pre: Tensor):
            z_recon = sae_from.decode(dense_of(values, indices, shape))
            stored: list[Tensor] = []

            def set_z(z: Tensor, hook: Any) -> Tensor:
                return z_recon if replace_z else z

            def store_z(z: Tensor, hook: Any) -> None:
                if hooks == "ctx":
                    hook.ctx["z"] = z
                else:
                    stored.append(z)

            fwd_hooks = [(z_from, set_z), (z_to, store_z)] if z_to != z_from else [(z_from, lambda z, hook: store_z(set_z(z, hook), hook) or set_z(z, hook))]
            kwargs = dict(start_at_layer=layer_from + start, stop_at_layer=layer_to + 1 + stop)
            if hooks == "context":
                with model.hooks(fwd_hooks=fwd_hooks):
                    model(resid_pre, **kwargs)
            elif hooks == "add_hook":
                for name, hook in fwd_hooks:
                    model.add_hook(name, hook)
                model(resid_pre, **kwargs)
            else:
                model.run_with_hooks(resid_pre, fwd_hooks=fwd_hooks, **kwargs)
            z = model.hook_dict[z_to].ctx.pop("z") if hooks == "ctx" else stored[-1]
            later = SparseTensor.from_dense(sae_to.encode(z))
            return later.sparse[0], (later.dense,)

        _, (prev, next_true), cache = true_latents(
            tokens, [sae_from, sae_to], model, error_term=error_term, how=how, extra_names=(resid_pre_name,) if resid_pre_in_cache else ()
        )
        resid_pre = cache[resid_pre_name]
        if dense_jacobian:
            grads, (next_recon,) = jacobian(
                lambda dense, r: later_latents(*SparseTensor.from_dense(dense).sparse, r), has_aux=True
            )(prev.dense, resid_pre)
        else:
            grads, (next_recon,) = jacobian(later_latents, has_aux=True)(*prev.sparse, resid_pre)
        return grads, prev, next_true, SparseTensor.from_dense(next_recon)

    return latent_to_latent_gradients_attn


# ---------------------------------------------------------------------------------------------
# The intermediate functions, on their own (their checks give them the true activations).
# ---------------------------------------------------------------------------------------------


def later_latent_acts(
    *, start: int = 0, stop: int = 0, output: str = "values", aux: str = "tuple", detach: bool = False, decode: str = "sae"
) -> Callable[..., Any]:
    """output: "values" or "dense" (the dense tensor differentiated); aux: "tuple" or "bare"."""

    def latent_acts_to_later_latent_acts(values: Tensor, indices: Tensor, shape: tuple[int, ...], sae_from: SAE, sae_to: SAE, model: HookedSAETransformer):
        dense = dense_of(values, indices, shape) if decode == "sae" else values.new_zeros(shape).index_put(tuple(indices.T), values)
        resid = sae_from.decode(dense)
        if detach:
            resid = resid.detach()
        resid = model(resid, start_at_layer=_get_hook_layer(sae_from) + start, stop_at_layer=_get_hook_layer(sae_to) + stop)
        later = SparseTensor.from_dense(sae_to.encode(resid))
        first = later.sparse[0] if output == "values" else later.dense
        return first, ((later.dense,) if aux == "tuple" else later.dense)

    return latent_acts_to_later_latent_acts


def tokens_to_latent_acts(*, stop: int = 0, use_scales: bool = True, broadcast: bool = True, output: str = "values", detach: bool = False, how: str = "broadcast") -> Callable[..., Any]:
    def tokens_to_latent_acts(token_scales: Tensor, tokens: Tensor, sae: SAE, model: HookedSAETransformer):
        embeddings = model(tokens, stop_at_layer=0)
        if detach:
            embeddings = embeddings.detach() * token_scales.detach()[..., None]
        elif not use_scales:
            pass
        elif how == "einsum":
            embeddings = einops.einsum(embeddings, token_scales, "b s d, b s -> b s d")
        else:
            embeddings = embeddings * (token_scales[..., None] if broadcast else token_scales)
        dense = sae.encode(model(embeddings, start_at_layer=0, stop_at_layer=_get_hook_layer(sae) + stop))
        latents = SparseTensor.from_dense(dense)
        return (latents.sparse[0] if output == "values" else latents.dense), (latents.dense,)

    return tokens_to_latent_acts


def latent_acts_to_logits(*, position: int = -1, start: int = 0, select: bool = True, keep_positions: bool = False, detach: bool = False, unembed: str = "model") -> Callable[..., Any]:
    def latent_acts_to_logits(values: Tensor, indices: Tensor, shape: tuple[int, ...], sae: SAE, model: HookedSAETransformer, token_ids: Any = None):
        resid = sae.decode(dense_of(values, indices, shape))
        if detach:
            resid = resid.detach()
        if unembed == "model":
            all_logits = model(resid, start_at_layer=_get_hook_layer(sae) + start)[0]
        else:  # only the final position through the final LayerNorm and the unembedding
            final = model(resid, start_at_layer=_get_hook_layer(sae) + start, stop_at_layer=model.cfg.n_layers)
            all_logits = model.unembed(model.ln_final(final[:, -1:]))[0]
        logits = all_logits if keep_positions else all_logits[position]
        return (logits[..., token_ids] if select else logits), (logits,)

    return latent_acts_to_logits


def later_latent_acts_attn(*, replace_z: bool = True, start: int = 0, stop: int = 0, record_layer: str = "to", hook_name: str = "act_name", detach: bool = False, reshape: bool = False) -> Callable[..., Any]:
    """record_layer: "to" (right) or "from" (the earlier layer's z); hook_name: "act_name" or "typo" (no attn.)."""

    def latent_acts_to_later_latent_acts_attn(values: Tensor, indices: Tensor, shape: tuple[int, ...], sae_from: SAE, sae_to: SAE, model: HookedSAETransformer, resid_pre_clean: Tensor):
        layer_from, layer_to = _get_hook_layer(sae_from), _get_hook_layer(sae_to)
        z_recon = sae_from.decode(dense_of(values, indices, shape))
        if detach:
            z_recon = z_recon.detach()
        if reshape:
            z_recon = z_recon.flatten(-2)
        recorded: list[Tensor] = []
        record_at = layer_to if record_layer == "to" else layer_from
        name = get_act_name("z", record_at) if hook_name == "act_name" else f"blocks.{record_at}.hook_z"

        def replace(z: Tensor, hook: Any) -> Tensor:
            return z_recon if replace_z else z

        def record(z: Tensor, hook: Any) -> None:
            recorded.append(z)

        model.run_with_hooks(
            resid_pre_clean,
            start_at_layer=layer_from + start,
            stop_at_layer=layer_to + 1 + stop,
            fwd_hooks=[(get_act_name("z", layer_from), replace), (name, record)],
        )
        later = SparseTensor.from_dense(sae_to.encode(recorded[-1]))
        return later.sparse[0], (later.dense,)

    return latent_acts_to_later_latent_acts_attn



def latent_circuit(
    *,
    weight: str = "gradient_x_activation",
    sign: str = "keep",
    prune: str = "backward",
    layer_order: str = "increasing",
    ranking: str = "absolute",
    tie_break: str = "first",
    jacobian: Callable[..., Any] = torch.func.jacrev,
) -> Callable[..., Any]:
    """Exercise 7 as the notebook leads a learner to write it: dense maps with each SAE's error term added back,
    every Jacobian in full (`jacobian`: jacrev or jacfwd), then pruning by hand with sorted().

    weight: "gradient_x_activation" or "raw" (the gradient alone); sign: "keep", "abs" or "negate";
    prune: "backward" (from the logit) or "forward" (from the tokens, by the weight flowing in);
    layer_order: "increasing" or "reversed" (the layers walked from the last);
    ranking: "absolute" (keep the k largest |contributions|) or "signed" (the k largest, inhibitory ones dropped);
    tie_break: among equal contributions, keep the "first" latent (in position and index order) or the "last"."""
    from part_utils.circuit import Circuit, CircuitEdge, CircuitNode

    def weighted(gradient: Tensor, activation: Tensor | float) -> Tensor:
        value = gradient if weight == "raw" else gradient * activation
        return value.abs() if sign == "abs" else -value if sign == "negate" else value

    def latent_circuit(tokens, saes, model, layers, target_token_id, k, edge_threshold=0.05):
        order = list(layers) if layer_order == "increasing" else list(layers)[::-1]
        with torch.no_grad():
            logit = float(model(tokens)[0, -1, target_token_id])
            _, cache = model.run_with_cache(tokens)
        resid = [cache[get_act_name("resid_pre", layer)] for layer in order]
        dense = [saes[layer].encode(r) for layer, r in zip(order, resid)]
        errors = [r - saes[layer].decode(d) for layer, r, d in zip(order, resid, dense)]
        acts = [SparseTensor.from_dense(d.detach()) for d in dense]
        keys = [[("latent", layer, p, latent) for _, p, latent in a.indices.tolist()] for layer, a in zip(order, acts)]
        values = [a.values for a in acts]

        def first_latents(scales: Tensor) -> Tensor:
            x = model(model(tokens, stop_at_layer=0) * scales[..., None], start_at_layer=0, stop_at_layer=order[0])
            return saes[order[0]].encode(x)[tuple(acts[0].indices.T)]

        token_weights = weighted(jacobian(first_latents)(torch.ones(tokens.shape, device=tokens.device))[:, 0].T.detach(), 1.0)  # (seq, n_0)
        between = []  # between[i][v, u]: layer i's latent u -> layer i + 1's latent v
        for i, (a, b) in enumerate(zip(order, order[1:])):

            def later(v: Tensor, i: int = i, a: int = a, b: int = b) -> Tensor:
                x = saes[a].decode(dense_of(v, acts[i].indices, acts[i].shape)) + errors[i]
                return saes[b].encode(model(x, start_at_layer=a, stop_at_layer=b))[tuple(acts[i + 1].indices.T)]

            between.append(weighted(jacobian(later)(values[i]).detach(), values[i]))

        def target_logit(v: Tensor) -> Tensor:
            x = saes[order[-1]].decode(dense_of(v, acts[-1].indices, acts[-1].shape)) + errors[-1]
            return model(x, start_at_layer=order[-1])[0, -1, target_token_id]

        logit_weights = weighted(jacobian(target_logit)(values[-1]).detach(), values[-1])
        n = len(order)
        kept: list[list[int]] = [[] for _ in range(n)]
        contribution: list[Tensor] = [torch.zeros(0)] * n
        if prune == "backward":
            c = logit_weights
            for i in reversed(range(n)):
                if i < n - 1:
                    c = between[i][kept[i + 1]].T @ (contribution[i + 1] / values[i + 1][kept[i + 1]])
                kept[i] = sorted(range(len(c)), key=lambda r: (-float(c[r] if ranking == "signed" else abs(c[r])), r if tie_break == "first" else -r))[:k]
                contribution[i] = c[kept[i]]
        else:
            inflow = token_weights.sum(0)
            for i in range(n):
                kept[i] = inflow.topk(min(k, len(inflow))).indices.tolist()
                if i + 1 < n:
                    inflow = between[i][:, kept[i]].sum(1)
            contribution[n - 1] = logit_weights[kept[n - 1]]
            for i in reversed(range(n - 1)):
                contribution[i] = between[i][kept[i + 1]][:, kept[i]].T @ (contribution[i + 1] / values[i + 1][kept[i + 1]])
        gradient_first = contribution[0] / values[0][kept[0]]
        token_ids = tokens[0].tolist()
        nodes = [CircuitNode("token", None, p, t, 1.0, float(token_weights[p, kept[0]] @ gradient_first)) for p, t in enumerate(token_ids)]
        for i in range(n):
            nodes += [CircuitNode(*keys[i][r], float(values[i][r]), float(c)) for r, c in zip(kept[i], contribution[i])]
        logit_key = ("logit", None, len(token_ids) - 1, target_token_id)
        nodes.append(CircuitNode(*logit_key, logit, logit))
        edges = [CircuitEdge(("token", None, p, t), keys[0][r], float(token_weights[p, r])) for r in kept[0] for p, t in enumerate(token_ids)]
        for i in range(n - 1):
            edges += [CircuitEdge(keys[i][u], keys[i + 1][v], float(between[i][v, u])) for v in kept[i + 1] for u in kept[i]]
        edges += [CircuitEdge(keys[-1][r], logit_key, float(logit_weights[r])) for r in kept[-1]]
        largest: dict = {}
        for e in edges:
            largest[e.target] = max(largest.get(e.target, 0.0), abs(e.weight))
        edges = [e for e in edges if e.weight != 0 and abs(e.weight) >= edge_threshold * largest[e.target]]
        return Circuit(tuple(nodes), tuple(edges), target_token_id, tuple(order))

    return latent_circuit


def attribution(
    how: str = "splice", error_term: bool = True, spliced: bool = True, positions: str = "one", sign: int = 1, metric: str = "difference", estimate: str = "delta"
) -> Callable[..., Any]:
    """The attribution exercise: the SAE spliced in with `model.saes` and its latents replaced in a hook on
    hook_sae_acts_post (`how="splice"`), or the clean model with the latent's decoder direction added to the
    residual stream (`how="decoder"`: the decoder is linear, so this is the same intervention)."""

    def attribution_and_ablation(
        tokens: Tensor, sae: SAE, model: HookedSAETransformer, latent_inds: Tensor, ablated_values: Tensor, answer_id: int, contrast_id: int
    ) -> tuple[Tensor, Tensor]:
        def metrics(logits: Tensor) -> Tensor:
            first = logits[:, answer_id] - (logits[:, contrast_id] if metric == "difference" else 0)
            return torch.stack([first, logits.softmax(-1)[:, answer_id]], -1)

        positions_, latents = latent_inds[:, 1], latent_inds[:, 2]
        hook_name = sae.cfg.metadata.hook_name
        _, cache = model.run_with_cache(tokens, names_filter=[hook_name])
        acts = sae.encode(cache[hook_name]).detach()
        deltas = acts[0, positions_, latents] - ablated_values
        if how == "splice":
            leaf = acts.clone().requires_grad_()
            with model.saes(saes=[sae], use_error_term=error_term):
                logits = model.run_with_hooks(tokens, fwd_hooks=[(acts_name(sae), lambda x, hook: leaf)])[:, -1]
            gradients = torch.stack([torch.autograd.grad(value, leaf, retain_graph=True)[0][0, positions_, latents] for value in metrics(logits)[0]], -1)

            effects = []
            for row in range(len(latent_inds)):
                def ablate(x: Tensor, hook: Any, row: int = row) -> Tensor:
                    x = x.clone()
                    where = slice(None) if positions == "every" else positions_[row]
                    x[:, where, latents[row]] = ablated_values[row]
                    return x

                with torch.no_grad():
                    if spliced:
                        with model.saes(saes=[sae], use_error_term=error_term):
                            clean = metrics(model(tokens)[:, -1])
                            ablated = metrics(model.run_with_hooks(tokens, fwd_hooks=[(acts_name(sae), ablate)])[:, -1])
                    else:  # the hook is added, but no SAE is attached: it never runs
                        clean = metrics(model(tokens)[:, -1])
                        ablated = metrics(model.run_with_hooks(tokens, fwd_hooks=[(hook_name, lambda x, hook: None)])[:, -1])
                effects.append((clean - ablated)[0])
            effects = torch.stack(effects)
        else:
            resid = cache[hook_name].detach().requires_grad_()
            logits = model(resid, start_at_layer=_get_hook_layer(sae))[:, -1]
            directions = sae.W_dec[latents]  # (n, d_model)
            resid_grads = torch.stack([torch.autograd.grad(value, resid, retain_graph=True)[0][0, positions_] for value in metrics(logits)[0]], -1)
            gradients = torch.einsum("nd,ndm->nm", directions, resid_grads)
            with torch.no_grad():
                batch = cache[hook_name].repeat(len(latent_inds), 1, 1)
                batch[torch.arange(len(latent_inds)), positions_] -= directions * deltas[:, None]
                effects = metrics(logits.detach()) - metrics(model(batch, start_at_layer=_get_hook_layer(sae))[:, -1])
        factor = acts[0, positions_, latents] if estimate == "activation" else deltas
        estimates = gradients.detach() * factor[:, None]
        return sign * estimates, sign * effects

    return attribution_and_ablation
