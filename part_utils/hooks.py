"""Small facts about where an SAE sits in the model."""

from __future__ import annotations

import re

from sae_lens import SAE

_LAYER_IN_HOOK_NAME = re.compile(r"^blocks\.(\d+)\.")


def _get_hook_layer(sae: SAE) -> int:
    """The index of the transformer block whose activations `sae` reads, e.g. 3 for `blocks.3.hook_resid_pre`."""
    hook_name = sae.cfg.metadata.hook_name
    match = _LAYER_IN_HOOK_NAME.match(hook_name or "")
    if match is None:
        raise ValueError(f"Cannot tell the layer of an SAE hooked at {hook_name!r}: expected 'blocks.<layer>.<hook>'.")
    return int(match.group(1))
