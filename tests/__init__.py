"""Learner checks, called from the notebooks as `tests.test_<exercise>(fn, model, saes)`.

Each runs the learner's function and the reference solution on the same world, and either prints
what matched or raises `CheckFailed` with what is wrong and, for common mistakes, how to fix it.
These are not tests of this project (those live in project_tests/): pytest must never collect them.
"""

from tests._report import CheckFailed
from tests.attention import test_latent_to_latent_gradients_attn
from tests.intermediate import (
    test_latent_acts_to_later_latent_acts,
    test_latent_acts_to_later_latent_acts_attn,
    test_latent_acts_to_logits,
    test_tokens_to_latent_acts,
)
from tests.latent_to_latent import test_latent_to_latent_gradients
from tests.latent_to_logit import test_latent_to_logit_gradients
from tests.sparse_tensor import test_sparse_tensor
from tests.token_to_latent import test_token_to_latent_gradients

__all__ = [
    "CheckFailed",
    "test_latent_acts_to_later_latent_acts",
    "test_latent_acts_to_later_latent_acts_attn",
    "test_latent_acts_to_logits",
    "test_latent_to_latent_gradients",
    "test_latent_to_latent_gradients_attn",
    "test_latent_to_logit_gradients",
    "test_sparse_tensor",
    "test_token_to_latent_gradients",
    "test_tokens_to_latent_acts",
]
