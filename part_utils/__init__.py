"""Helpers the course notebooks use: worlds (model + SAEs), device and memory, plots, dashboards."""

from part_utils.circuit import Circuit, CircuitEdge, CircuitNode, circuit_faithfulness
from part_utils.circuit_plot import plot_circuit
from part_utils.dashboard import display_dashboard
from part_utils.device import free_memory, get_device, memory_report
from part_utils.hooks import _get_hook_layer
from part_utils.plots import (
    induction_latents,
    induction_mass_ratio,
    plot_induction,
    plot_induction_filtered,
    plot_latent_to_latent,
    plot_latent_to_logit,
    plot_token_to_latent,
    show_attention_patterns,
)
from part_utils.world_types import World, WorldUnavailable
from part_utils.worlds import load_world

__all__ = [
    "Circuit",
    "CircuitEdge",
    "CircuitNode",
    "World",
    "WorldUnavailable",
    "_get_hook_layer",
    "circuit_faithfulness",
    "display_dashboard",
    "free_memory",
    "get_device",
    "induction_latents",
    "induction_mass_ratio",
    "load_world",
    "memory_report",
    "plot_circuit",
    "plot_induction",
    "plot_induction_filtered",
    "plot_latent_to_latent",
    "plot_latent_to_logit",
    "plot_token_to_latent",
    "show_attention_patterns",
]
