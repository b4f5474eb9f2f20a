"""Reference solutions of the Latent Gradients exercises (the learner checks compare against these)."""

from solutions.attention import latent_acts_to_later_latent_acts_attn, latent_to_latent_gradients_attn
from solutions.attribution import attribution_and_ablation
from solutions.latent_circuit import latent_circuit
from solutions.latent_to_latent import latent_acts_to_later_latent_acts, latent_to_latent_gradients
from solutions.latent_to_logit import latent_acts_to_logits, latent_to_logit_gradients
from solutions.sparse_tensor import SparseTensor
from solutions.token_to_latent import token_to_latent_gradients, tokens_to_latent_acts

__all__ = [
    "SparseTensor",
    "attribution_and_ablation",
    "latent_acts_to_later_latent_acts",
    "latent_acts_to_later_latent_acts_attn",
    "latent_acts_to_logits",
    "latent_circuit",
    "latent_to_latent_gradients",
    "latent_to_latent_gradients_attn",
    "latent_to_logit_gradients",
    "token_to_latent_gradients",
    "tokens_to_latent_acts",
]
