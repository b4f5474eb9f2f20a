"""Learner check for `latent_circuit` (exercise 7, the optional capstone)."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor

import solutions
from part_utils.circuit import EDGE_THRESHOLD, Circuit, NodeKey
from solutions.latent_circuit import Attribution, attribution, prune, rank
from tests._exercise import _also_changed, exercise_settings, left_a_trace
from tests._report import CheckFailed, call_learner, close_enough, compare_tensor, fmt_seconds, passed, shape_of, tolerances
from tests._state import preserved_state

EXERCISE = "test_latent_circuit"
PARTS = (None, "nodes", "edges")

HINT_RAW_GRADIENTS = (
    "These weights are raw gradients. An edge's weight is gradient x activation: multiply each Jacobian column by "
    "its source latent's activation (latent_acts.values), and the gradient to the logit likewise."
)
HINT_LOST_SIGN = (
    "A lost sign: your weights have the reference's size but not always its sign. Keep the sign of gradient x "
    "activation (no .abs(), no minus): the ranking looks at |contribution|, the weights keep their sign."
)
HINT_SIGNED_TOP_K = (
    "These are the k latents that push the prediction up most: a signed top k drops every latent that pushes it "
    "down. Rank each layer by |contribution| (the contribution keeps its sign; only the ranking ignores it)."
)
HINT_FORWARD = (
    "These are the latents the tokens drive most, pruned forward from the first layer. Prune back from the logit: "
    "start at the last layer (its contribution is its edge to the logit), keep its top k, then rank the layer before "
    "by its edges into the kept latents times d(logit)/d(latent) = contribution / activation, and so on down."
)
HINT_LAYER_ORDER = (
    "Layers in the wrong order: edges run tokens -> layers[0] -> layers[1] -> ... -> layers[-1] -> logit, each layer "
    "into the next one up. Check which SAE is sae_from and which is sae_to, and that token edges go into the first "
    "layer and logit edges come out of the last."
)


def _key(key: Sequence[Any]) -> NodeKey:
    """A node key with plain ints (a learner's may hold 0-d tensors or numpy ints), so keys compare by value."""
    kind, *numbers = key
    return (kind, *(None if n is None else int(n) for n in numbers))


def _keys(circuit: Circuit, kind: str | None = None) -> set[NodeKey]:
    return {_key(node.key) for node in circuit.nodes if kind is None or node.kind == kind}


def _require_circuit(got: Any) -> Circuit:
    if not (hasattr(got, "nodes") and hasattr(got, "edges")):
        raise CheckFailed(
            EXERCISE,
            f"your function should return a Circuit (part_utils.circuit), but it returned a {shape_of(got)}.",
            "Build it with Circuit(nodes=tuple(nodes), edges=tuple(edges), target_token_id=..., layers=tuple(layers)).",
        )
    try:
        for node in got.nodes:
            _key(node.key), float(node.activation), float(node.contribution)
        for edge in got.edges:
            _key(edge.source), _key(edge.target), float(edge.weight)
    except (AttributeError, TypeError, ValueError) as error:
        raise CheckFailed(
            EXERCISE,
            f"the circuit's nodes should be CircuitNodes and its edges CircuitEdges with float weights ({error}).",
            "Use part_utils.circuit's CircuitNode(kind, layer, position, index, activation, contribution) and "
            "CircuitEdge(source=node.key, target=node.key, weight=float(...)).",
        ) from None
    return got


def _layer_order_problem(circuit: Circuit, layers: tuple[int, ...]) -> str | None:
    """What is out of order in the circuit's edges, if anything: each edge must go from one column to the next."""
    column = {layer: i + 1 for i, layer in enumerate(layers)}

    def column_of(key: Sequence[Any]) -> int | None:
        kind, layer = key[0], key[1]
        if kind == "token":
            return 0
        if kind == "logit":
            return len(layers) + 1
        return column.get(layer)

    for edge in circuit.edges:
        source, target = column_of(_key(edge.source)), column_of(_key(edge.target))
        if source is None or target is None:
            return f"an edge {edge.source} -> {edge.target} has a latent at a layer that is not one of {list(layers)}"
        if target != source + 1:
            return f"an edge runs {edge.source} -> {edge.target}, not from one column to the next"
    return None


def _every_row(attr: Attribution) -> tuple[Tensor, list[Tensor]]:
    """All the weights of a dense attribution: token -> first layer (seq, n_0), and layer i -> i + 1 (n_{i+1}, n_i)."""
    every = [torch.arange(len(a.values)) for a in attr.acts]
    return attr.token_weights(every[0]), [attr.latent_weights(i, every[i + 1]) for i in range(len(attr.layers) - 1)]


def _scaled(attr: Attribution, how: Callable[[Tensor, Tensor | None], Tensor]) -> Attribution:
    """`attr` (dense) with every weight w replaced by how(w, the source's activation)."""
    tokens, between = _every_row(attr)
    tokens = how(tokens, None)
    between = [how(w, attr.acts[i].values[None]) for i, w in enumerate(between)]
    return dataclasses.replace(
        attr,
        token_weights=lambda rows: tokens[:, rows],
        latent_weights=lambda i, rows: between[i][rows],
        logit_weights=how(attr.logit_weights, attr.acts[-1].values),
    )


def _forward_pruned_latents(attr: Attribution, k: int) -> set[NodeKey]:
    """The latents kept when pruning goes forward: each layer's top k by the weight flowing in from the kept nodes below."""
    tokens, between = _every_row(attr)
    inflow = tokens.sum(0)
    kept_keys: set[NodeKey] = set()
    for i, layer in enumerate(attr.layers):
        kept = inflow.topk(min(k, len(inflow))).indices
        kept_keys |= {("latent", layer, p, latent) for _, p, latent in attr.acts[i].sparse[1][kept].tolist()}
        if i + 1 < len(attr.layers):
            inflow = between[i][:, kept].sum(1)
    return kept_keys


def _named_mistake(got: Circuit, attr: Attribution, k: int, threshold: float, compare_weights: bool) -> str | None:
    """The hint of the known mistake whose circuit is the learner's (same latents; same weights if `compare_weights`)."""
    got_latents = _keys(got, "latent")
    # (hint, the attribution the mistake prunes, whether it ranks by the signed contribution)
    variants = (
        (HINT_RAW_GRADIENTS, _scaled(attr, lambda w, a: w if a is None else w / a), False),
        (HINT_LOST_SIGN, _scaled(attr, lambda w, a: w.abs()), False),
        (HINT_LOST_SIGN, _scaled(attr, lambda w, a: -w), False),
        (HINT_SIGNED_TOP_K, attr, True),
    )
    last = attr.layers[-1]
    for hint, variant, signed in variants:
        circuit = prune(variant, k, threshold, signed)
        if not compare_weights:
            # The last layer is pruned first, so a mistake shows there exactly; further down, near-ties among
            # small contributions may order a few latents differently: most of them must agree.
            variant_latents = _keys(circuit, "latent")
            same_last = {key for key in got_latents if key[1] == last} == {key for key in variant_latents if key[1] == last}
            if same_last and 2 * len(got_latents & variant_latents) >= len(variant_latents):
                return hint
        elif _keys(circuit, "latent") == got_latents and _same_edges(got, circuit):
            return hint
    if not compare_weights and _forward_pruned_latents(attr, k) == got_latents:
        return HINT_FORWARD
    return None


def _tied_at_the_cut(attr: Attribution, k: int) -> set[NodeKey]:
    """The latents that tie, within rounding, with the smallest contribution a layer keeps, where there are more
    of them than places: which of them a circuit keeps is arbitrary (e.g. latents at positions after every kept
    latent above them, whose contribution is exactly zero by causality), so any choice among them is right."""
    tied: set[NodeKey] = set()
    ranking = rank(attr, k)
    for i, (contributions, kept) in enumerate(zip(ranking.contributions, ranking.kept)):
        if len(kept) == 0:
            continue
        _, atol_relative = tolerances(contributions.device)
        cut = contributions[kept].abs().min()
        ties = ((contributions.abs() - cut).abs() <= atol_relative * contributions.abs().max()).nonzero()[:, 0]
        if len(ties) > int(torch.isin(kept, ties).sum()):
            tied |= {("latent", attr.layers[i], p, latent) for _, p, latent in attr.acts[i].sparse[1][ties].tolist()}
    return tied


def _only_ties_differ(got_keys: set[NodeKey], want_keys: set[NodeKey], attr: Attribution, k: int) -> bool:
    """Whether the two circuits keep as many latents per layer, and differ only in which tied latents they keep."""
    layers = {key[1] for key in got_keys | want_keys if key[0] == "latent"}
    same_counts = all(sum(key[1] == layer for key in got_keys) == sum(key[1] == layer for key in want_keys) for layer in layers)
    return same_counts and (got_keys ^ want_keys) <= _tied_at_the_cut(attr, k)


def _same_edges(got: Circuit, want: Circuit) -> bool:
    got_weights = {(_key(e.source), _key(e.target)): float(e.weight) for e in got.edges}
    want_weights = {(e.source, e.target): e.weight for e in want.edges}
    if set(got_weights) != set(want_weights):
        return False
    order = sorted(want_weights)
    return close_enough(torch.tensor([got_weights[e] for e in order]), torch.tensor([want_weights[e] for e in order]))


def _describe(keys: set[NodeKey]) -> str:
    shown = sorted(keys, key=str)[:4]
    text = ", ".join(f"F{layer}.{index} at position {position}" if kind == "latent" else f"{kind} {index} at {position}" for kind, layer, position, index in shown)
    return text + (" …" if len(keys) > 4 else "")


def compare_circuits(got: Any, want: Circuit, attr: Callable[[], Attribution], k: int, threshold: float, part: str | None) -> str:
    got = _require_circuit(got)
    layers = tuple(want.layers)
    problem = _layer_order_problem(got, layers)
    if problem is not None:
        raise CheckFailed(EXERCISE, f"the circuit's edges are out of order: {problem}.", HINT_LAYER_ORDER)
    got_keys, want_keys = _keys(got), _keys(want)
    # Where the circuits differ only by tied latents at a cut, each is compared on the nodes both keep.
    tie_swaps = got_keys != want_keys and _only_ties_differ(got_keys, want_keys, attr(), k)
    shared = got_keys & want_keys
    if part != "edges":
        if got_keys != want_keys and not tie_swaps:
            missing, extra = want_keys - got_keys, got_keys - want_keys
            raise CheckFailed(
                EXERCISE,
                f"the circuit has {len(got_keys)} nodes, the reference {len(want_keys)}: {len(missing)} of the reference's "
                f"are missing ({_describe(missing)}), {len(extra)} are not in it ({_describe(extra)}).",
                _named_mistake(got, attr(), k, threshold, compare_weights=False)
                or "Keep every token position, the k latents with the largest |contribution| per layer, and the logit.",
            )
        order = sorted(shared, key=str)
        got_nodes = {_key(n.key): n for n in got.nodes}
        want_nodes = {n.key: n for n in want.nodes}
        for quantity in ("activation", "contribution"):
            values = torch.tensor([float(getattr(got_nodes[key], quantity)) for key in order], dtype=torch.float64)
            reference = torch.tensor([getattr(want_nodes[key], quantity) for key in order], dtype=torch.float64)
            hint = None
            if quantity == "contribution" and not close_enough(values, reference):
                hint = _named_mistake(got, attr(), k, threshold, compare_weights=True) or (
                    "A node's contribution is its activation times d(logit)/d(node) along the kept nodes above it."
                )
            compare_tensor(EXERCISE, f"the nodes' {quantity}s (nodes sorted by key)", values, reference, hint)
    if part != "nodes":
        got_edges = {(_key(e.source), _key(e.target)): float(e.weight) for e in got.edges}
        want_edges = {(e.source, e.target): e.weight for e in want.edges}
        if tie_swaps:
            got_edges, want_edges = ({ends: w for ends, w in edges.items() if set(ends) <= shared} for edges in (got_edges, want_edges))
        if set(got_edges) != set(want_edges):
            missing, extra = set(want_edges) - set(got_edges), set(got_edges) - set(want_edges)
            raise CheckFailed(
                EXERCISE,
                f"the circuit has {len(got_edges)} edges, the reference {len(want_edges)}: {len(missing)} missing "
                f"(e.g. {sorted(missing, key=str)[:1]}), {len(extra)} not in it (e.g. {sorted(extra, key=str)[:1]}).",
                _named_mistake(got, attr(), k, threshold, compare_weights=False)
                or f"Keep the edges between kept nodes of consecutive columns whose |weight| is at least {threshold} x the "
                "largest |weight| into the same node.",
            )
        order = sorted(want_edges, key=str)
        weights = torch.tensor([got_edges[e] for e in order], dtype=torch.float64)
        reference = torch.tensor([want_edges[e] for e in order], dtype=torch.float64)
        hint = None
        if not close_enough(weights, reference):
            hint = _named_mistake(got, attr(), k, threshold, compare_weights=True)
            if hint is None and close_enough(weights.abs(), reference.abs()):
                hint = HINT_LOST_SIGN
        compare_tensor(EXERCISE, "the edges' weights (edges sorted by their ends)", weights, reference, hint)
    # What was compared: the edges among the nodes both circuits keep, where tied latents were swapped.
    summary = f"{len(want.latents())} latents over layers {list(layers)}"
    if part != "nodes":
        summary += f", {len(want_edges)} edges"
    summary += " match the reference"
    if tie_swaps:
        summary += f" (tied at a cut, you kept {_describe(got_keys - want_keys)} where the reference kept {_describe(want_keys - got_keys)})"
    return summary if part is None else f"{part} only: {summary}"


def test_latent_circuit(
    latent_circuit: Any,
    model: HookedSAETransformer,
    saes: Mapping[int, SAE],
    *,
    prompt: str | None = None,
    layers: Sequence[int] | None = None,
    k: int | None = None,
    part: str | None = None,
) -> None:
    """Check latent_circuit against the reference on this world's prompt (its top prediction), layers and k."""
    if part not in PARTS:
        raise ValueError(f"part should be one of {PARTS}, not {part!r}")
    if not callable(latent_circuit):
        raise CheckFailed(EXERCISE, f"the first argument should be your function, but it is a {shape_of(latent_circuit)}.")
    settings = exercise_settings(model, "latent_circuit", prompt=prompt, layers=layers, k=k)
    layers, k, threshold = tuple(settings.layers), settings.k, EDGE_THRESHOLD
    tokens = model.to_tokens(settings.prompt)
    with torch.no_grad():
        target = int(model(tokens)[0, -1].argmax())
    used = [saes[layer] for layer in layers]
    start = time.perf_counter()
    with torch.enable_grad(), preserved_state(model, used):
        want = solutions.latent_circuit(tokens, saes, model, layers, target, k)
    with torch.enable_grad(), preserved_state(model, used) as changes:
        try:
            got = call_learner(EXERCISE, latent_circuit, tokens, saes, model, layers, target, k)
        except CheckFailed as failure:
            raise _also_changed(failure, changes) from None

    @functools.cache
    def attr() -> Attribution:
        """Every edge's weight, for recognising a mistake: computed only when the learner's circuit differs."""
        with torch.enable_grad(), preserved_state(model, used):
            return attribution(tokens, saes, model, layers, target).dense()

    try:
        summary = compare_circuits(got, want, attr, k, threshold, part)
    except CheckFailed as failure:
        raise _also_changed(failure, changes) from None
    if changes:
        raise left_a_trace(EXERCISE, changes)
    passed(EXERCISE, f"{summary} ({fmt_seconds(time.perf_counter() - start)} for your function and the reference)")


test_latent_circuit.__test__ = False  # a learner check, not a test of this project
