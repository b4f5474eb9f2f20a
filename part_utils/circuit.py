"""The capstone's circuit: its data types, and the ablation that tests whether the circuit is real.

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

# An edge is kept when its |weight| is at least this share of the largest |weight| into the same node.
EDGE_THRESHOLD = 0.05

# A node's identity: (kind, layer, position, index). Edges name their ends by it.
NodeKey = tuple[str, "int | None", int, int]


@dataclass(frozen=True)
class CircuitNode:
    """One node of a circuit.

    kind:         "token", "latent" or "logit"
    layer:        the SAE's layer for a latent (the layer of `blocks.{layer}.hook_resid_pre`); None otherwise
    position:     the token position (the final one for the logit)
    index:        the latent's index in its SAE for a latent; the token id for a token or the logit
    activation:   the latent's true activation; 1.0 for a token (its embedding scale); the logit's value
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


@torch.no_grad()
def target_logits_with_ablations(
    tokens: Tensor,
    saes: Mapping[int, SAE],
    model: HookedSAETransformer,
    layers: Sequence[int],
    target_token_id: int,
    ablations: Sequence[Iterable[tuple[int, int, int]]],
) -> list[float]:
    """The target logit at the final position, once per ablation, all in one batched run: the SAEs of
    `layers` are spliced in with their error term (so with nothing ablated the output is the clean
    model's), and each ablation's latents, given as (layer, position, latent), are set to zero."""
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
    return logits[:, -1, target_token_id].tolist()


@dataclass(frozen=True)
class Faithfulness:
    """How much the target logit drops when the circuit's latents are zeroed, against as many random ones.

    clean:         the target logit with nothing ablated
    circuit_drop:  clean - the logit with the circuit's latents zeroed
    random_drops:  the same, for each draw of random active latents (as many per layer as the circuit has)
    """

    clean: float
    circuit_drop: float
    random_drops: tuple[float, ...]

    @property
    def random_mean(self) -> float:
        return sum(self.random_drops) / len(self.random_drops)

    @property
    def random_std(self) -> float:
        return float(torch.tensor(self.random_drops, dtype=torch.float64).std()) if len(self.random_drops) > 1 else 0.0

    def __str__(self) -> str:
        return (
            f"target logit {self.clean:.3f}; zeroing the circuit's latents drops it by {self.circuit_drop:.3f}; "
            f"zeroing as many random active latents at the same layers drops it by {self.random_mean:.3f} "
            f"± {self.random_std:.3f} (mean ± standard deviation over {len(self.random_drops)} draws)"
        )


@torch.no_grad()
def circuit_faithfulness(
    circuit: Circuit,
    tokens: Tensor,
    saes: Mapping[int, SAE],
    model: HookedSAETransformer,
    n_random: int = 10,
    seed: int = 0,
) -> Faithfulness:
    """Zero the circuit's latents (SAEs spliced in with their error term) and measure the target logit's drop;
    then zero, `n_random` times, as many latents drawn at random from those active at each of the circuit's
    layers, and measure the same drop."""
    layers = circuit.layers
    names = [f"{saes[layer].cfg.metadata.hook_name}.hook_sae_acts_post" for layer in layers]
    _, cache = model.run_with_cache_with_saes(tokens, saes=[saes[layer] for layer in layers], use_error_term=True, names_filter=names)
    active = {layer: [(layer, p, latent) for _, p, latent in (cache[name] > 0).nonzero().tolist()] for layer, name in zip(layers, names)}
    rng = random.Random(seed)
    drawn = [
        [entry for layer in layers for entry in rng.sample(active[layer], len(circuit.latents(layer)))] for _ in range(n_random)
    ]
    chosen = [(node.layer, node.position, node.index) for node in circuit.latents()]
    clean, ablated, *random_logits = target_logits_with_ablations(
        tokens, saes, model, layers, circuit.target_token_id, [[], chosen, *drawn]
    )
    circuit_drop, random_drops = clean - ablated, [clean - logit for logit in random_logits]
    return Faithfulness(clean, circuit_drop, tuple(random_drops))
