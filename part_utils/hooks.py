"""Small facts about where an SAE sits in the model.

Hook names are built with TransformerLens's `get_act_name` everywhere (the notebook teaches it);
this module only reads a layer back out of one.
"""

from __future__ import annotations

import re

from sae_lens import SAE

_LAYER_IN_HOOK_NAME = re.compile(r"^blocks\.(\d+)\.")


def layer_of_hook(hook_name: str) -> int:
    """The block a hook name (or an SAE id named like one) belongs to, e.g. 3 for `blocks.3.hook_resid_pre`."""
    match = _LAYER_IN_HOOK_NAME.match(hook_name or "")
    if match is None:
        raise ValueError(f"Cannot tell the layer of {hook_name!r}: expected 'blocks.<layer>.<hook>'.")
    return int(match.group(1))


def _get_hook_layer(sae: SAE) -> int:
    """The index of the transformer block whose activations `sae` reads, e.g. 3 for `blocks.3.hook_resid_pre`."""
    return layer_of_hook(sae.cfg.metadata.hook_name)
