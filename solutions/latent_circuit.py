"""Exercise 7 (optional capstone): a circuit for one prediction, from the tokens through the latents of a
few residual SAEs to the target logit, pruned back from the logit.

The maps are exercises 2, 4 and 5's, adapted: each SAE's error term is added back to its reconstruction, so
that every Jacobian is taken at the model's true activations (the exercise-3 Jacobian is taken at the
reconstruction, where another set of later latents may be active), and each returns only the rows pruning asks
for: k per layer, so a handful of backward passes in all."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Int
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor

from part_utils.circuit import EDGE_THRESHOLD, Circuit, CircuitEdge, CircuitNode, NodeKey
from part_utils.hooks import _get_hook_layer
from solutions.sparse_tensor import SparseTensor


@dataclass(frozen=True)
class Attribution:
    """What pruning reads: the true activations, and the weights (gradient x source activation) of the edges
    it asks for, rows chosen by the caller.

    acts[i]:                  the true activations of the SAE at layers[i] (a clean run)
    token_weights(rows):      (seq, len(rows)): token position -> those rows of the first layer's latents
    latent_weights(i, rows):  (len(rows), n_active[i]): layers[i]'s latents -> those rows of layers[i + 1]'s
    logit_weights:            (n_active[-1],): the last layer's latents -> the target logit
    """

    token_ids: list[int]
    layers: tuple[int, ...]
    acts: list[SparseTensor]
    token_weights: Callable[[Tensor], Tensor]
    latent_weights: Callable[[int, Tensor], Tensor]
    logit_weights: Tensor
    target_token_id: int
    logit: float

    def dense(self) -> Attribution:
        """The same attribution with every weight computed once, up front (for comparing variants of pruning)."""
        every = [torch.arange(len(a.values)) for a in self.acts]
        tokens = self.token_weights(every[0])
        between = [self.latent_weights(i, every[i + 1]) for i in range(len(self.layers) - 1)]
        return dataclasses.replace(
            self, token_weights=lambda rows: tokens[:, rows], latent_weights=lambda i, rows: between[i][rows]
        )


def true_activations(
    tokens: Tensor, saes: Mapping[int, SAE], model: HookedSAETransformer, layers: Sequence[int], target_token_id: int
) -> tuple[list[SparseTensor], list[Tensor], float]:
    """Each SAE's true activations on `tokens`, its error term (input - reconstruction), and the target logit,
    from one clean run."""
    names = [saes[layer].cfg.metadata.hook_name for layer in layers]
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens, names_filter=names)
        acts, errors = [], []
        for layer, name in zip(layers, names):
            dense = saes[layer].encode(cache[name])
            acts.append(SparseTensor.from_dense(dense))
            errors.append(cache[name] - saes[layer].decode(dense))
    return acts, errors, float(logits[0, -1, target_token_id])


def later_latents_with_error(
    values: Tensor, indices: Tensor, shape: tuple[int, ...], sae_from: SAE, sae_to: SAE, model: HookedSAETransformer, error: Tensor, rows: Tensor
) -> Tensor:
    """Exercise 2's map, adapted: the earlier SAE's error term is added back to its reconstruction, so at the true
    activations the later SAE sees the true residual stream; returns the later latents at `rows` ((n, 3) indices)."""
    resid = sae_from.decode(SparseTensor.from_sparse((values, indices, shape)).dense) + error
    later = sae_to.encode(model(resid, start_at_layer=_get_hook_layer(sae_from), stop_at_layer=_get_hook_layer(sae_to)))
    return later[tuple(rows.T)]


def target_logit_with_error(
    values: Tensor, indices: Tensor, shape: tuple[int, ...], sae: SAE, model: HookedSAETransformer, error: Tensor, target_token_id: int
) -> Tensor:
    """Exercise 5's map for one logit, adapted likewise: the target logit at the final position."""
    resid = sae.decode(SparseTensor.from_sparse((values, indices, shape)).dense) + error
    return model(resid, start_at_layer=_get_hook_layer(sae))[0, -1, target_token_id]


def first_latents_from_scales(scales: Tensor, tokens: Tensor, sae: SAE, model: HookedSAETransformer, rows: Tensor) -> Tensor:
    """Exercise 4's map: the first SAE's latents at `rows`, with each position's block-0 input scaled."""
    embeddings = model(tokens, stop_at_layer=0) * scales[..., None]
    return sae.encode(model(embeddings, start_at_layer=0, stop_at_layer=_get_hook_layer(sae)))[tuple(rows.T)]


def attribution(
    tokens: Int[Tensor, "1 seq"],
    saes: Mapping[int, SAE],
    model: HookedSAETransformer,
    layers: Sequence[int],
    target_token_id: int,
) -> Attribution:
    """The activations, and the edge weights on demand: each asked-for block of rows is one `jacrev` with as many
    outputs as rows (pruning asks for k rows per layer, so a handful of backward passes in all)."""
    layers = tuple(layers)
    if list(layers) != sorted(set(layers)):
        raise ValueError(f"layers should be increasing, without repeats: {layers}")
    acts, errors, logit = true_activations(tokens, saes, model, layers, target_token_id)

    def token_weights(rows: Tensor) -> Tensor:
        # The tokens' activation is their embedding scale, 1: the weight is the gradient itself.
        scales = torch.ones(tokens.shape, device=tokens.device)
        jacobian = torch.func.jacrev(first_latents_from_scales)(scales, tokens, saes[layers[0]], model, acts[0].sparse[1][rows])
        return jacobian[:, 0].T.detach()

    def latent_weights(i: int, rows: Tensor) -> Tensor:
        values, indices, shape = acts[i].sparse
        jacobian = torch.func.jacrev(later_latents_with_error)(
            values, indices, shape, saes[layers[i]], saes[layers[i + 1]], model, errors[i], acts[i + 1].sparse[1][rows]
        )
        return jacobian.detach() * values[None]

    values, indices, shape = acts[-1].sparse
    gradient = torch.func.grad(target_logit_with_error)(values, indices, shape, saes[layers[-1]], model, errors[-1], target_token_id)
    return Attribution(tokens[0].tolist(), layers, acts, token_weights, latent_weights, gradient.detach() * values, target_token_id, logit)


def _top(contributions: Tensor, k: int, signed: bool = False) -> Tensor:
    """The rows of the k largest |contributions|, largest first: a latent that pushes the prediction down counts
    as much as one that pushes it up. `signed` ranks by the contribution itself (inhibitory latents dropped)."""
    scores = contributions if signed else contributions.abs()
    return scores.topk(min(k, len(contributions))).indices


@dataclass(frozen=True)
class Ranking:
    """Pruning's pass back from the logit: per layer, every active latent's contribution (given the latents
    kept above it), the rows kept, and the weights from the layer into the next one's kept rows."""

    contributions: list[Tensor]  # contributions[i]: (n_active[i],)
    kept: list[Tensor]  # kept[i]: rows of layers[i]'s active latents, largest |contribution| first
    into: list[Tensor]  # into[i + 1]: (len(kept[i + 1]), n_active[i]); into[0] unused


def rank(attr: Attribution, k: int, signed: bool = False) -> Ranking:
    """Keep, per layer, the k latents with the largest |contribution| to the logit, going back from the logit
    (`signed`: the largest contribution, as `_top`).

    A latent's contribution is its activation times the gradient of the logit with respect to it along the
    nodes already kept: for the last layer its edge to the logit; for an earlier layer the sum, over the kept
    latents v of the next layer, of its edge to v times d(logit)/d(v) = contribution(v) / activation(v)."""
    n_layers = len(attr.layers)
    kept: list[Tensor] = [torch.zeros(0, dtype=torch.long)] * n_layers
    contributions: list[Tensor] = [torch.zeros(0)] * n_layers
    into: list[Tensor] = [torch.zeros(0)] * n_layers
    contribution = attr.logit_weights
    for i in reversed(range(n_layers)):
        if i < n_layers - 1:
            into[i + 1] = attr.latent_weights(i, kept[i + 1])
            contribution = into[i + 1].T @ _grad_above(attr, contributions, kept, i + 1)
        contributions[i], kept[i] = contribution, _top(contribution, k, signed)
    return Ranking(contributions, kept, into)


def _grad_above(attr: Attribution, contributions: list[Tensor], kept: list[Tensor], i: int) -> Tensor:
    """d(logit)/d(latent) of layers[i]'s kept latents: their contribution over their activation."""
    return contributions[i][kept[i]] / attr.acts[i].values[kept[i]]


def prune(attr: Attribution, k: int, edge_threshold: float = EDGE_THRESHOLD, signed: bool = False) -> Circuit:
    """The circuit of `rank`'s kept latents; edges below `edge_threshold` x the largest |weight| into the same
    node are dropped."""
    n_layers = len(attr.layers)
    ranking = rank(attr, k, signed)
    kept, into = ranking.kept, ranking.into
    contributions = [c[rows] for c, rows in zip(ranking.contributions, kept)]
    token_weights = attr.token_weights(kept[0])  # (seq, k)
    token_contributions = token_weights @ _grad_above(attr, ranking.contributions, kept, 0)

    def latent_key(i: int, row: int) -> NodeKey:
        _, position, latent = attr.acts[i].sparse[1][row].tolist()
        return ("latent", attr.layers[i], position, latent)

    final = len(attr.token_ids) - 1
    logit_key: NodeKey = ("logit", None, final, attr.target_token_id)
    nodes = [
        CircuitNode("token", None, position, token_id, 1.0, float(token_contributions[position]))
        for position, token_id in enumerate(attr.token_ids)
    ]
    for i in range(n_layers):
        for row, c in zip(kept[i].tolist(), contributions[i].tolist()):
            nodes.append(CircuitNode(*latent_key(i, row), float(attr.acts[i].values[row]), c))
    nodes.append(CircuitNode(*logit_key, attr.logit, attr.logit))

    candidates: list[CircuitEdge] = []
    for column, row in enumerate(kept[0].tolist()):
        candidates += [
            CircuitEdge(("token", None, p, t), latent_key(0, row), float(token_weights[p, column])) for p, t in enumerate(attr.token_ids)
        ]
    for i in range(n_layers - 1):
        for j, row_to in enumerate(kept[i + 1].tolist()):
            candidates += [
                CircuitEdge(latent_key(i, row_from), latent_key(i + 1, row_to), float(into[i + 1][j, row_from]))
                for row_from in kept[i].tolist()
            ]
    candidates += [CircuitEdge(latent_key(n_layers - 1, row), logit_key, float(attr.logit_weights[row])) for row in kept[-1].tolist()]
    largest_into: dict[NodeKey, float] = {}
    for edge in candidates:
        largest_into[edge.target] = max(largest_into.get(edge.target, 0.0), abs(edge.weight))
    edges = [e for e in candidates if e.weight != 0 and abs(e.weight) >= edge_threshold * largest_into[e.target]]
    return Circuit(tuple(nodes), tuple(edges), attr.target_token_id, attr.layers)


def latent_circuit(
    tokens: Int[Tensor, "1 seq"],
    saes: Mapping[int, SAE],
    model: HookedSAETransformer,
    layers: Sequence[int],
    target_token_id: int,
    k: int,
    edge_threshold: float = EDGE_THRESHOLD,
) -> Circuit:
    """
    The circuit behind the target logit at the final position, through the residual SAEs at `layers`.

    Nodes: every token position; per layer (increasing), the k active latents with the largest |contribution|
    to the target logit (inhibitory ones included), pruned going back from the logit; the target logit. Edges, weight = gradient x
    activation of the source: token -> first layer (exercise 4, the tokens' activation being their
    embedding scale, 1), layer -> next layer (exercise 2's map with the earlier SAE's error term added back),
    last layer -> logit (exercise 5's map for one logit, with the error term likewise).
    Edges below `edge_threshold` x the largest |weight| into the same node are dropped.

    Returns a `Circuit` (part_utils.circuit): its nodes, edges, target token id and layers.
    """
    assert tokens.shape[0] == 1, "Only supports batch size 1"
    return prune(attribution(tokens, saes, model, layers, target_token_id), k, edge_threshold)
