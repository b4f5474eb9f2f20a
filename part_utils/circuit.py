"""The capstone's circuit: its data types, and the measurements that test whether the circuit is real
(completeness, and necessity and sufficiency against a matched control, on `part_utils.attribution`'s metrics).

A circuit explains one prediction: the target logit at the final position. Its nodes are the prompt's
token positions, a few active latents of residual SAEs at some layers, and the target logit; an edge's
weight is gradient x activation, the first-order contribution of its source to its target.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor

from part_utils.attribution import answer_metrics

# An edge is kept when its |weight| is at least this share of the largest |weight| into the same node.
EDGE_THRESHOLD = 0.05

# A node's identity: (kind, layer, position, index). Edges name their ends by it.
NodeKey = tuple[str, "int | None", int, int]


@dataclass(frozen=True)
class CircuitNode:
    """One node of a circuit.

    kind:         "token", "latent", "error" (an SAE's error term at one position) or "logit"
    layer:        the SAE's layer for a latent or an error (the layer of `blocks.{layer}.hook_resid_pre`); None otherwise
    position:     the token position (the final one for the logit)
    index:        the latent's index in its SAE for a latent; the token id for a token or the logit; 0 for an error
    activation:   the latent's true activation; 1.0 for a token (its embedding scale) or an error (its scale);
                  the logit's value
    contribution: the node's first-order contribution to the target logit through the circuit's later nodes
                  (the logit's own value for the logit)
    """

    kind: str
    layer: int | None
    position: int
    index: int
    activation: float
    contribution: float

    @property
    def key(self) -> NodeKey:
        return (self.kind, self.layer, self.position, self.index)


@dataclass(frozen=True)
class CircuitEdge:
    """source -> target, with weight = d(target) / d(source) x source's activation."""

    source: NodeKey
    target: NodeKey
    weight: float


@dataclass(frozen=True)
class Circuit:
    """Nodes (tokens by position, then each layer's latents, then the logit) and the edges between them.

    Edges run from each column to the next: tokens -> the first layer's latents -> ... -> the last
    layer's latents -> the logit."""

    nodes: tuple[CircuitNode, ...]
    edges: tuple[CircuitEdge, ...]
    target_token_id: int
    layers: tuple[int, ...]

    def latents(self, layer: int | None = None) -> list[CircuitNode]:
        """The latent nodes, of one layer or of all."""
        return [node for node in self.nodes if node.kind == "latent" and (layer is None or node.layer == layer)]

    def errors(self, layer: int | None = None) -> list[CircuitNode]:
        """The error nodes, of one layer or of all."""
        return [node for node in self.nodes if node.kind == "error" and (layer is None or node.layer == layer)]


def with_error_nodes(
    circuit: Circuit, tokens: Tensor, saes: Mapping[int, SAE], model: HookedSAETransformer, edge_threshold: float = EDGE_THRESHOLD
) -> Circuit:
    """The circuit with one error node per SAE layer and position, wherever its edge matters.

    At each of the circuit's layers the residual stream is the active latents' decoding plus the SAE's error, so
    the error at each position is one more source into the next layer's kept latents (the last layer's: into the
    logit). Its edge weight is the target's gradient with respect to the residual stream there, dotted with the
    error (gradient x activation, the error's scale being 1); its contribution, like a latent's, runs through the
    kept latents above. Errors are sources only (held at their clean values), and an error node is kept when one
    of its edges reaches `edge_threshold` x the largest |weight| into the same node, the circuit's edges included."""
    layers = circuit.layers
    hook_names = [saes[layer].cfg.metadata.hook_name for layer in layers]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=hook_names)
        resid = [cache[name] for name in hook_names]
        errors = [r - saes[layer].decode(saes[layer].encode(r)) for layer, r in zip(layers, resid)]
    final = tokens.shape[-1] - 1
    logit_key: NodeKey = ("logit", None, final, circuit.target_token_id)
    candidates: list[CircuitEdge] = []
    contributions: dict[NodeKey, float] = {}
    for i, layer in enumerate(layers):
        if i + 1 < len(layers):
            above = circuit.latents(layers[i + 1])
            rows = torch.tensor([[0, node.position, node.index] for node in above], dtype=torch.long).reshape(-1, 3)

            def targets(x: Tensor, i: int = i, rows: Tensor = rows) -> Tensor:
                later = model(x, start_at_layer=layers[i], stop_at_layer=layers[i + 1])
                return saes[layers[i + 1]].encode(later)[tuple(rows.T)]

            # d(latent above)/d(residual stream) . error, per position: (n_above, seq)
            weights = (torch.func.jacrev(targets)(resid[i])[:, 0] * errors[i][0]).sum(-1).detach()
            # d(logit)/d(latent above), along the kept nodes: contribution / activation
            gradient_above = torch.tensor([node.contribution / node.activation for node in above], dtype=weights.dtype, device=weights.device)
            above_keys = [node.key for node in above]
        else:

            def target_logit(x: Tensor, i: int = i) -> Tensor:
                return model(x, start_at_layer=layers[i])[0, -1, circuit.target_token_id]

            weights = (torch.func.grad(target_logit)(resid[i])[0] * errors[i][0]).sum(-1).detach()[None]
            gradient_above, above_keys = torch.ones(1, dtype=weights.dtype, device=weights.device), [logit_key]
        for position in range(tokens.shape[-1]):
            key: NodeKey = ("error", layer, position, 0)
            contributions[key] = float(weights[:, position] @ gradient_above)
            candidates += [CircuitEdge(key, target, float(weights[j, position])) for j, target in enumerate(above_keys)]
    largest: dict[NodeKey, float] = {}
    for edge in (*circuit.edges, *candidates):
        largest[edge.target] = max(largest.get(edge.target, 0.0), abs(edge.weight))
    error_edges = [e for e in candidates if e.weight != 0 and abs(e.weight) >= edge_threshold * largest[e.target]]
    kept = dict.fromkeys(e.source for e in error_edges)
    error_nodes = tuple(CircuitNode(*key, 1.0, contributions[key]) for key in kept)
    logit_index = len(circuit.nodes) - 1 if circuit.nodes and circuit.nodes[-1].kind == "logit" else len(circuit.nodes)
    nodes = (*circuit.nodes[:logit_index], *error_nodes, *circuit.nodes[logit_index:])
    return Circuit(nodes, (*circuit.edges, *error_edges), circuit.target_token_id, layers)


Latent = tuple[int, int, int]  # (layer, position, latent)


@torch.no_grad()
def metrics_with_ablations(
    tokens: Tensor,
    saes: Mapping[int, SAE],
    model: HookedSAETransformer,
    layers: Sequence[int],
    answer_id: int,
    contrast_id: int,
    ablations: Sequence[Iterable[Latent]],
) -> Tensor:
    """The metrics (`answer_metrics`: logit difference, probability) at the final position, once per ablation,
    all in one batched run, shape (len(ablations), 2). The SAEs of `layers` are spliced in with their error
    term (so with nothing ablated the output is the clean model's), and each ablation's latents are zeroed."""
    masks = {layer: torch.zeros(len(ablations), tokens.shape[-1], saes[layer].cfg.d_sae, dtype=torch.bool) for layer in layers}
    for row, ablated in enumerate(ablations):
        for layer, position, latent in ablated:
            masks[layer][row, position, latent] = True

    def zero(layer: int):
        def hook(acts: Tensor, hook: object) -> Tensor:
            return acts.masked_fill(masks[layer].to(acts.device), 0.0)

        return hook

    hooks = [(f"{saes[layer].cfg.metadata.hook_name}.hook_sae_acts_post", zero(layer)) for layer in layers]
    with model.saes(saes=[saes[layer] for layer in layers], use_error_term=True):
        logits = model.run_with_hooks(tokens.expand(len(ablations), -1), fwd_hooks=hooks)
    return answer_metrics(logits[:, -1], answer_id, contrast_id)


@dataclass(frozen=True)
class Ablation:
    """One intervention on the circuit and its matched control: the drop of each metric (clean - ablated;
    logit difference, probability) for the circuit, and for each seeded draw of the control.

    A control draw "beats" the circuit when it does the circuit's job at least as well on the logit difference:
    for necessity, a drop as large; for sufficiency (a smaller drop is better), a drop as small."""

    name: str
    circuit_drop: tuple[float, float]
    control_drops: tuple[tuple[float, float], ...]

    def _control(self, metric: int) -> Tensor:
        return torch.tensor([drop[metric] for drop in self.control_drops], dtype=torch.float64)

    def control_mean(self, metric: int = 0) -> float:
        return float(self._control(metric).mean())

    def control_std(self, metric: int = 0) -> float:
        return float(self._control(metric).std()) if len(self.control_drops) > 1 else 0.0

    @property
    def control_beats(self) -> int:
        drops = self._control(0)
        beaten = drops >= self.circuit_drop[0] if self.name == "necessity" else drops <= self.circuit_drop[0]
        return int(beaten.sum())

    def __str__(self) -> str:
        return (
            f"{self.name}: logit difference drops by {self.circuit_drop[0]:.2f} (probability by {self.circuit_drop[1]:.4f}); "
            f"matched control {self.control_mean(0):.2f} ± {self.control_std(0):.2f} (probability {self.control_mean(1):.4f}); "
            f"{self.control_beats} of {len(self.control_drops)} draws beat the circuit"
        )


@dataclass(frozen=True)
class Faithfulness:
    """Necessity and sufficiency of a circuit's latents at some layers, each against its matched control.

    clean:       the metrics with nothing ablated (logit difference, probability)
    necessity:   the circuit's latents zeroed; control: as many other active latents at the same layers and positions
    sufficiency: every other active latent at the layers zeroed (errors kept); control: the same, keeping the
                 control's latents instead of the circuit's
    """

    layers: tuple[int, ...]
    clean: tuple[float, float]
    necessity: Ablation
    sufficiency: Ablation

    def __str__(self) -> str:
        return (
            f"layers {list(self.layers)}: logit difference {self.clean[0]:.2f}, probability {self.clean[1]:.4f}\n"
            f"  {self.necessity}\n  {self.sufficiency}"
        )


@torch.no_grad()
def circuit_faithfulness(
    circuit: Circuit,
    tokens: Tensor,
    saes: Mapping[int, SAE],
    model: HookedSAETransformer,
    contrast_id: int,
    layers: Sequence[int] | None = None,
    n_random: int = 20,
    seed: int = 0,
) -> Faithfulness:
    """Necessity and sufficiency of the circuit's latents at `layers` (default: all of the circuit's), with the
    SAEs of those layers spliced in, their errors kept, on the metrics of the circuit's target against `contrast_id`.

    The matched control draws, `n_random` times, one active latent at the same layer and position for each of
    the circuit's latents, never one of the circuit's own (positions with no other active latent get none)."""
    layers = tuple(circuit.layers if layers is None else layers)
    names = [f"{saes[layer].cfg.metadata.hook_name}.hook_sae_acts_post" for layer in layers]
    _, cache = model.run_with_cache_with_saes(tokens, saes=[saes[layer] for layer in layers], use_error_term=True, names_filter=names)
    active = [(layer, p, latent) for layer, name in zip(layers, names) for _, p, latent in (cache[name] > 0).nonzero().tolist()]
    chosen = [(node.layer, node.position, node.index) for node in circuit.latents() if node.layer in layers]
    others: dict[tuple[int, int], list[Latent]] = {}
    for entry in active:
        if entry not in chosen:
            others.setdefault(entry[:2], []).append(entry)
    rng = random.Random(seed)
    controls = []
    for _ in range(n_random):
        wanted: dict[tuple[int, int], int] = {}
        for layer, position, _ in chosen:
            wanted[(layer, position)] = wanted.get((layer, position), 0) + 1
        controls.append([entry for place, n in wanted.items() for entry in rng.sample(others.get(place, []), min(n, len(others.get(place, []))))])

    def all_but(kept: list[Latent]) -> list[Latent]:
        kept_set = set(kept)
        return [entry for entry in active if entry not in kept_set]

    ablations = [[], chosen, *controls, all_but(chosen), *(all_but(control) for control in controls)]
    metrics = metrics_with_ablations(tokens, saes, model, layers, circuit.target_token_id, contrast_id, ablations)
    drops = [tuple(row) for row in (metrics[0] - metrics).tolist()]
    n = n_random
    return Faithfulness(
        layers,
        tuple(metrics[0].tolist()),
        Ablation("necessity", drops[1], tuple(drops[2 : 2 + n])),
        Ablation("sufficiency", drops[2 + n], tuple(drops[3 + n :])),
    )


def completeness(
    circuit: Circuit, tokens: Tensor, saes: Mapping[int, SAE], model: HookedSAETransformer, contrast_id: int, layer: int
) -> dict[str, float]:
    """How much of the logit difference's first-order attribution at one of the circuit's layers its kept latents carry.

    At a residual SAE's layer the residual stream is, at each position, the active latents' decoder rows times their
    activations, the decoder bias and the SAE's error: gradient x each piece (the error and the bias one node per
    position) adds up to gradient · residual stream. The shares are of the summed |gradient x piece| over every node:
    `kept` (the circuit's latents at `layer`), `all_latents` (the full, unpruned graph's latents), `errors`."""
    sae, hook_name = saes[layer], saes[layer].cfg.metadata.hook_name
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=[hook_name])
        resid = cache[hook_name]
        acts = sae.encode(resid)
        error = resid - sae.decode(acts)
    resid = resid.clone().requires_grad_()
    logits = model(resid, start_at_layer=layer)[0, -1]
    (gradient,) = torch.autograd.grad(logits[circuit.target_token_id] - logits[contrast_id], resid)
    with torch.no_grad():
        gradient = gradient[0]  # (seq, d_model)
        latent_attribution = acts[0] * (gradient @ sae.W_dec.T)  # (seq, d_sae)
        error_attribution = (gradient * error[0]).sum(-1)
        bias_attribution = gradient @ sae.b_dec
    total = float(latent_attribution.abs().sum() + error_attribution.abs().sum() + bias_attribution.abs().sum())
    kept = sum(abs(float(latent_attribution[node.position, node.index])) for node in circuit.latents(layer))
    return {
        "kept": kept / total,
        "all_latents": float(latent_attribution.abs().sum()) / total,
        "errors": float(error_attribution.abs().sum()) / total,
        "signed_total": float(latent_attribution.sum() + error_attribution.sum() + bias_attribution.sum()),
    }
