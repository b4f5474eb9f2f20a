"""Helpers the course notebooks use: worlds (model + SAEs), device and memory, plots, dashboards.

The names below are imported from their modules on first use (PEP 562), not when the package is: a
torch-free module such as `part_utils.settings` or `part_utils.network` can then be imported by
the autograder's nbgrader process or a fail-fast script without loading torch and sae_lens.
"""

from __future__ import annotations

import importlib
from typing import Any

# Each exported name and the module that defines it.
_HOMES = {
    "EDGE_THRESHOLD": "part_utils.circuit",
    "Circuit": "part_utils.circuit",
    "CircuitEdge": "part_utils.circuit",
    "CircuitNode": "part_utils.circuit",
    "World": "part_utils.world_types",
    "WorldUnavailable": "part_utils.world_types",
    "_get_hook_layer": "part_utils.hooks",
    "answer_metrics": "part_utils.attribution",
    "circuit_faithfulness": "part_utils.circuit",
    "completeness": "part_utils.circuit",
    "display_dashboard": "part_utils.dashboard",
    "free_memory": "part_utils.device",
    "get_device": "part_utils.device",
    "gradient_shares": "part_utils.plots",
    "induction_latents": "part_utils.plots",
    "induction_rectangle_masses": "part_utils.plots",
    "load_world": "part_utils.worlds",
    "mean_latent_acts": "part_utils.attribution",
    "memory_report": "part_utils.device",
    "plot_circuit": "part_utils.circuit_plot",
    "plot_estimate_vs_effect": "part_utils.attribution",
    "plot_induction": "part_utils.plots",
    "plot_induction_filtered": "part_utils.plots",
    "plot_latent_to_latent": "part_utils.plots",
    "plot_latent_to_logit": "part_utils.plots",
    "plot_token_to_latent": "part_utils.plots",
    "show_attention_patterns": "part_utils.plots",
    "with_error_nodes": "part_utils.circuit",
}
__all__ = sorted(_HOMES)

def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'part_utils' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
