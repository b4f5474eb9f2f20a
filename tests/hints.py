"""The hints catalogue: each named mistake the learner checks recognise, with a stable id and a short label.

The texts stay where the checks use them; this catalogue only names them. An id is what a check's report
sends to the workshop board (workshop/board/) and what its database stores, so an id never changes once
released; a label is what the board shows ("error term not set"). A hint a check builds from a catalogue
text (a prefix naming the learner's layers, or `{L}` filled in) is still that mistake.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType

from tests import attention, intermediate, latent_circuit, latent_to_latent
from tests._report import HINT_BROKEN_GRAPH
from tests._state import HINT_LEAVE_NO_TRACE

# A failed check whose hint is none of the catalogue's (a one-off explanation written into the check).
UNNAMED = "unnamed"


@dataclass(frozen=True)
class Hint:
    id: str
    label: str
    text: str

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        # A `{...}` field of a template text matches whatever the check filled in.
        parts = re.split(r"\{[^{}]*\}", self.text)
        return re.compile(".*?".join(re.escape(part) for part in parts), re.DOTALL)


HINTS: tuple[Hint, ...] = (
    Hint("broken_graph", "gradient graph broken", HINT_BROKEN_GRAPH),
    Hint("left_a_trace", "model or SAEs left changed", HINT_LEAVE_NO_TRACE),
    Hint("error_term_not_set", "error term not set", latent_to_latent.HINT_ERROR_TERM),
    Hint("wrong_layers", "wrong start/stop layers", latent_to_latent.HINT_LAYERS),
    Hint("dense_jacobian", "Jacobian over every latent", latent_to_latent.HINT_DENSE_JACOBIAN),
    Hint("hook_never_ran", "z hook never ran", attention.HINT_HOOK_NEVER_RAN),
    Hint("not_cached", "activation not cached", attention.HINT_NOT_CACHED),
    Hint("dense_values", "dense output to jacrev", intermediate.HINT_VALUES),
    Hint("aux_not_tuple", "aux not a one-element tuple", intermediate.HINT_AUX),
    Hint("raw_gradients", "raw gradients as weights", latent_circuit.HINT_RAW_GRADIENTS),
    Hint("lost_sign", "lost sign", latent_circuit.HINT_LOST_SIGN),
    Hint("signed_top_k", "inhibitory latents dropped", latent_circuit.HINT_SIGNED_TOP_K),
    Hint("pruned_forward", "pruned forward, not back", latent_circuit.HINT_FORWARD),
    Hint("layer_order", "layers in the wrong order", latent_circuit.HINT_LAYER_ORDER),
)
BY_ID = MappingProxyType({hint.id: hint for hint in HINTS})
LABELS = MappingProxyType({**{hint.id: hint.label for hint in HINTS}, UNNAMED: "other mistake"})


def hint_id(text: str | None) -> str | None:
    """The id of the mistake a failed check's hint names: the longest catalogue text it contains, UNNAMED
    for a hint outside the catalogue, None for a failure without a hint."""
    if not text:
        return None
    matches = [hint for hint in HINTS if hint.pattern.search(text)]
    return max(matches, key=lambda hint: len(hint.text)).id if matches else UNNAMED
