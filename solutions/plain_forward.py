"""Forward passes through plain pre-layer-norm blocks that read the attention weights as they are stored.

TransformerLens's attention rearranges W_Q, W_K, W_V (heads, d_model, d_head) and W_O into fresh
copies on every call, four per block. At a prompt's few positions a block's products are limited by
reading its weights from memory, and each copy reads and writes a weight once more: on GPT-2's shape
about a third of a clean forward pass. Here q, k and v are products batched over heads against the
weights as stored, z meets W_O viewed as one (heads * d_head, d_model) matrix, and the layer norms and
the MLP are the model's own modules. The results equal the model's up to float rounding; models
whose blocks are not of this kind go through the model.

Used for the clean passes only: no hook point fires, and nothing is differentiated. (Under
`vmap`, the backward pass of a product batched over heads copies each weight once per cotangent.)
"""

from __future__ import annotations

import torch
from sae_lens import HookedSAETransformer
from torch import Tensor
from transformer_lens.utilities import get_act_name


def has_plain_blocks(model: HookedSAETransformer) -> bool:
    """Whether every block is the plain kind written out here: pre-layer-norm softmax attention then MLP."""
    cfg = model.cfg
    return (
        cfg.positional_embedding_type in ("standard", "rotary")
        and cfg.attention_dir == "causal"
        and not (cfg.attn_only or cfg.parallel_attn_mlp or cfg.use_attn_in or cfg.use_split_qkv_input)
        and not (cfg.use_normalization_before_and_after or cfg.use_attention_sinks or cfg.use_logn_attn)
        and not (cfg.use_dynamic_ntk_rope or cfg.load_in_4bit or cfg.gated_mlp or cfg.num_experts)
        and not cfg.is_layer_norm_activation()
        and cfg.clip_qkv is None
        and cfg.n_key_value_heads is None
        and not (cfg.use_qk_norm or cfg.attn_scores_soft_cap > 0)  # plain softmax(q k / scale)
        and cfg.original_architecture in (None, "GPT2LMHeadModel")
    )


def _heads(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """(batch, heads, pos, d_head): x (batch, pos, d_model) against each head's (d_model, d_head) weight."""
    return torch.matmul(x[:, None], weight) + bias[:, None]


def block_forward(block: torch.nn.Module, resid: Tensor, final_query_only: bool = False) -> tuple[Tensor, Tensor]:
    """(the block's output, its attention's z (batch, pos, heads, d_head)) for `resid` (batch, pos, d_model).

    With `final_query_only`, only the final position's output: the others give only keys and values.
    """
    attn = block.attn
    normalized = block.ln1(resid)
    queries = normalized[:, -1:] if final_query_only else normalized
    q, k, v = _heads(queries, attn.W_Q, attn.b_Q), _heads(normalized, attn.W_K, attn.b_K), _heads(normalized, attn.W_V, attn.b_V)
    offset = k.shape[-2] - q.shape[-2]  # positions before the first query
    if attn.cfg.positional_embedding_type == "rotary":  # the model's own rotary, on its (batch, pos, heads, d_head) layout
        q = attn.apply_rotary(q.transpose(1, 2), offset).transpose(1, 2)
        k = attn.apply_rotary(k.transpose(1, 2)).transpose(1, 2)
    scores = attn.apply_causal_mask(q @ k.transpose(-1, -2) / attn.attn_scale, offset)
    z = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2)
    resid_mid = resid[:, offset:] + z.flatten(2) @ attn.W_O.flatten(0, 1) + attn.b_O
    return resid_mid + block.mlp(block.ln2(resid_mid)), z


def blocks_forward(model: HookedSAETransformer, resid: Tensor, start: int, stop: int, final_query_only: bool = False) -> tuple[Tensor, dict[str, Tensor]]:
    """`model(resid, start_at_layer=start, stop_at_layer=stop)`, and each block's input and z by hook name.

    With `final_query_only`, the last block runs at the final position only (see `block_forward`).
    """
    activations = {}
    for layer in range(start, stop):
        activations[get_act_name("resid_pre", layer)] = resid
        resid, activations[get_act_name("z", layer)] = block_forward(model.blocks[layer], resid, final_query_only and layer == stop - 1)
    activations[get_act_name("resid_pre", stop)] = resid
    return resid, activations
