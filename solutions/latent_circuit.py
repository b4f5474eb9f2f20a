"""Exercise 7 (optional capstone): a circuit for one prediction, from the tokens through the latents of a
few residual SAEs to the target logit, built from exercises 3, 4 and 5 and pruned back from the logit."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType

import torch
from jaxtyping import Int
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor

from part_utils.circuit import Circuit, CircuitEdge, CircuitNode, NodeKey
from solutions.jacobian import sparse_jacobian
from solutions.latent_to_latent import latent_to_latent_gradients
from solutions.latent_to_logit import latent_acts_to_logits
from solutions.sparse_tensor import SparseTensor
from solutions.token_to_latent import token_to_latent_gradients

# An edge is kept when its |weight| is at least this share of the largest |weight| into the same node.
EDGE_THRESHOLD = 0.05


@dataclass(frozen=True)
class Attribution:
    """Every candidate edge of a circuit, before pruning: weights are gradient x source activation.

    acts[i]:            the true activations of the SAE at layers[i] (a clean run)
    token_weights:      (seq, n_active[0]): token position -> first layer's latent
    latent_weights[i]:  (n_active[i + 1], n_active[i]): layers[i]'s latent -> layers[i + 1]'s latent
                        (a later latent not active in the reconstructed run gets no weight)
    logit_weights:      (n_active[-1],): last layer's latent -> the target logit
    """

    token_ids: list[int]
    layers: tuple[int, ...]
    acts: list[SparseTensor]
    token_weights: Tensor
    latent_weights: list[Tensor]
    logit_weights: Tensor
    target_token_id: int
    logit: float


def _rows_in(acts_recon: SparseTensor, acts_true: SparseTensor) -> tuple[Tensor, Tensor]:
    """For the true active latents that are also active in the reconstructed run: (their rows among the
    true ones, their rows among the reconstructed ones)."""
    recon_row = {tuple(index): row for row, index in enumerate(acts_recon.sparse[1].tolist())}
    pairs = [(row, recon_row[tuple(index)]) for row, index in enumerate(acts_true.sparse[1].tolist()) if tuple(index) in recon_row]
    if not pairs:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    true_rows, recon_rows = torch.tensor(pairs).T
    return true_rows, recon_rows


def logit_gradients(tokens: Tensor, sae: SAE, model: HookedSAETransformer, acts: SparseTensor, target_token_id: int) -> Tensor:
    """d(target logit at the final position) / d(each active latent of `sae`): exercise 5's function with
    `token_ids=[target_token_id]`, one output."""
    values, indices, shape = acts.sparse
    gradients, _ = sparse_jacobian(latent_acts_to_logits, values, (indices, shape, sae, model, [target_token_id]), tokens.numel(), model)
    return gradients[0]


def attribution(
    tokens: Int[Tensor, "1 seq"],
    saes: Mapping[int, SAE],
    model: HookedSAETransformer,
    layers: Sequence[int],
    target_token_id: int,
    gradients: ModuleType | None = None,
) -> Attribution:
    """Every candidate edge's weight, from exercises 3, 4 and 5's functions (those of `gradients`, a module
    with `token_to_latent_gradients`, `latent_to_latent_gradients` and `logit_gradients`; the reference's by default)."""
    layers = tuple(layers)
    if list(layers) != sorted(set(layers)):
        raise ValueError(f"layers should be increasing, without repeats: {layers}")
    token_to_latent: Callable = getattr(gradients, "token_to_latent_gradients", token_to_latent_gradients)
    latent_to_latent: Callable = getattr(gradients, "latent_to_latent_gradients", latent_to_latent_gradients)
    to_logit: Callable = getattr(gradients, "logit_gradients", logit_gradients)

    token_grads, first_acts = token_to_latent(tokens, saes[layers[0]], model)
    first_acts = SparseTensor.from_dense(first_acts.dense.detach())
    # The tokens' activation is their embedding scale, 1: the weight is the gradient itself.
    token_weights = token_grads[0].detach()
    acts, latent_weights = [first_acts], []
    for layer_from, layer_to in zip(layers, layers[1:]):
        jacobian, acts_from, acts_to, acts_to_recon = latent_to_latent(tokens, saes[layer_from], saes[layer_to], model)
        weights = torch.zeros(len(acts_to.values), len(acts_from.values), device=jacobian.device)
        true_rows, recon_rows = _rows_in(acts_to_recon, acts_to)
        weights[true_rows.to(weights.device)] = jacobian.detach()[recon_rows.to(jacobian.device)] * acts_from.values.detach()[None]
        acts.append(SparseTensor.from_dense(acts_to.dense.detach()))
        latent_weights.append(weights)
    logit_weights = to_logit(tokens, saes[layers[-1]], model, acts[-1], target_token_id).detach() * acts[-1].values
    with torch.no_grad():
        logit = float(model(tokens)[0, -1, target_token_id])
    return Attribution(tokens[0].tolist(), layers, acts, token_weights, latent_weights, logit_weights, target_token_id, logit)


def _top(contributions: Tensor, k: int) -> Tensor:
    """The rows of the k largest contributions, largest first."""
    return contributions.topk(min(k, len(contributions))).indices


def prune(attr: Attribution, k: int, edge_threshold: float = EDGE_THRESHOLD) -> Circuit:
    """Keep, per layer, the k latents with the largest contribution to the logit, going back from the logit.

    A latent's contribution is its activation times the gradient of the logit with respect to it along the
    nodes already kept: for the last layer its edge to the logit; for an earlier layer the sum, over the kept
    latents v of the next layer, of its edge to v times d(logit)/d(v) = contribution(v) / activation(v).
    Then edges below `edge_threshold` x the largest |weight| into the same node are dropped."""
    n_layers = len(attr.layers)
    kept: list[Tensor] = [torch.zeros(0, dtype=torch.long)] * n_layers
    contributions: list[Tensor] = [torch.zeros(0)] * n_layers
    # d(logit) / d(kept latent), for the layer above the one being pruned.
    contribution = attr.logit_weights
    for i in reversed(range(n_layers)):
        if i < n_layers - 1:
            contribution = attr.latent_weights[i][kept[i + 1]].T @ grad_above
        kept[i] = _top(contribution, k)
        contributions[i] = contribution[kept[i]]
        grad_above = contributions[i] / attr.acts[i].values[kept[i]]
    token_contributions = attr.token_weights[:, kept[0]] @ grad_above

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
    for row in kept[0].tolist():
        candidates += [CircuitEdge(("token", None, p, t), latent_key(0, row), float(attr.token_weights[p, row])) for p, t in enumerate(attr.token_ids)]
    for i in range(n_layers - 1):
        for row_to in kept[i + 1].tolist():
            candidates += [
                CircuitEdge(latent_key(i, row_from), latent_key(i + 1, row_to), float(attr.latent_weights[i][row_to, row_from]))
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

    Nodes: every token position; per layer (increasing), the k active latents with the largest contribution
    to the target logit, pruned going back from the logit; the target logit. Edges, weight = gradient x
    activation of the source: token -> first layer (exercise 4, the tokens' activation being their
    embedding scale, 1), layer -> next layer (exercise 3), last layer -> logit (exercise 5 for one logit).
    Edges below `edge_threshold` x the largest |weight| into the same node are dropped.

    Returns a `Circuit` (part_utils.circuit): its nodes, edges, target token id and layers.
    """
    assert tokens.shape[0] == 1, "Only supports batch size 1"
    return prune(attribution(tokens, saes, model, layers, target_token_id), k, edge_threshold)
