"""Forward passes through plain pre-layer-norm blocks that read the attention weights as they are stored.

TransformerLens's attention rearranges W_Q, W_K, W_V (heads, d_model, d_head) and W_O into fresh
copies on every call, four per block. At a prompt's few positions a block's products are limited by
reading its weights from memory, and each copy reads and writes a weight once more: on GPT-2's shape
about a third of a clean forward pass. Here q, k and v are products batched over heads against the
weights as stored, z meets W_O viewed as one (heads * d_head, d_model) matrix, and the layer norms and
the MLP are the model's own maths. The results equal the model's up to float rounding; models
whose blocks are not of this kind go through the model.

No hook point fires. The clean passes run them as they are; the pass the top logits' reverse mode
differentiates runs them `for_reverse_mode` (see `block_forward`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from sae_lens import HookedSAETransformer
from torch import Tensor
from transformer_lens.components import LayerNorm, LayerNormPre
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


def slope(act_fn: Callable[[Tensor], Tensor], pre: Tensor) -> Tensor:
    """The elementwise activation's derivative at `pre`: the gradient of the sum of its outputs.

    In reverse mode rather than with `torch.func.jvp`, whose first call in a process compiles its
    decompositions (about half a second, which a learner would wait for at the first gradient check).
    """
    with torch.enable_grad():
        pre = pre.detach().requires_grad_()
        (derivative,) = torch.autograd.grad(act_fn(pre).sum(), pre)
    return derivative


def layer_norm(norm: torch.nn.Module, x: Tensor) -> Tensor:
    """`norm(x)`, through torch's fused layer norm where `norm` is TransformerLens's LayerNorm(Pre).

    The same maths, (x - mean) / sqrt(variance + eps), times w plus b (LayerNorm only); but its backward
    pass is one step, where the module's graph is a dozen elementwise steps, each run for every
    cotangent of the top logits' reverse mode. Any other norm, or dtype, is the module itself.
    """
    if type(norm) not in (LayerNorm, LayerNormPre) or x.dtype not in (torch.float32, torch.float64):
        return norm(x)
    weight, bias = (norm.w, norm.b) if isinstance(norm, LayerNorm) else (None, None)
    return torch.nn.functional.layer_norm(x, x.shape[-1:], weight, bias, norm.eps)


def _heads(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """(batch, heads, pos, d_head): x (batch, pos, d_model) against each head's (d_model, d_head) weight."""
    return torch.matmul(x[:, None], weight) + bias[:, None]


def _heads_flattened(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """`_heads` against the weight flattened to (d_model, heads * d_head): one copy of it per call,
    where under `vmap` the backward pass of a product batched over heads copies it once per cotangent."""
    n_heads, _, d_head = weight.shape
    return (x @ weight.permute(1, 0, 2).flatten(1)).unflatten(-1, (n_heads, d_head)).transpose(1, 2) + bias[:, None]


def _linearised_mlp(mlp: torch.nn.Module, normalized: Tensor) -> Tensor:
    """The MLP, its activation written as its value plus its slope times the change of its input.

    The value is the same; what changes is the recorded graph: a backward pass through it is one
    product by the slope (computed once per call), where the activation's own graph (GPT-2's tanh
    approximation of GELU is a dozen elementwise steps) would run every step for every cotangent.
    """
    pre = normalized @ mlp.W_in + mlp.b_in
    fixed = pre.detach()
    post = mlp.act_fn(fixed) + slope(mlp.act_fn, fixed) * (pre - fixed)
    return post @ mlp.W_out + mlp.b_out


def block_forward(block: torch.nn.Module, resid: Tensor, final_query_only: bool = False, for_reverse_mode: bool = False) -> tuple[Tensor, Tensor]:
    """(the block's output, its attention's z (batch, pos, heads, d_head)) for `resid` (batch, pos, d_model).

    With `final_query_only`, only the final position's output: the others give only keys and values.
    `for_reverse_mode` records a graph whose backward passes, batched over cotangents, stay plain
    products (`_heads_flattened`, `_linearised_mlp`); the values are the same.
    """
    attn = block.attn
    normalized = layer_norm(block.ln1, resid)
    queries = normalized[:, -1:] if final_query_only else normalized
    heads = _heads_flattened if for_reverse_mode else _heads
    q, k, v = heads(queries, attn.W_Q, attn.b_Q), heads(normalized, attn.W_K, attn.b_K), heads(normalized, attn.W_V, attn.b_V)
    offset = k.shape[-2] - q.shape[-2]  # positions before the first query
    if attn.cfg.positional_embedding_type == "rotary":  # the model's own rotary, on its (batch, pos, heads, d_head) layout
        q = attn.apply_rotary(q.transpose(1, 2), offset).transpose(1, 2)
        k = attn.apply_rotary(k.transpose(1, 2)).transpose(1, 2)
    scores = attn.apply_causal_mask(q @ k.transpose(-1, -2) / attn.attn_scale, offset)
    z = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2)
    resid_mid = resid[:, offset:] + z.flatten(2) @ attn.W_O.flatten(0, 1) + attn.b_O
    normalized = layer_norm(block.ln2, resid_mid)
    return resid_mid + (_linearised_mlp(block.mlp, normalized) if for_reverse_mode else block.mlp(normalized)), z


def blocks_forward(
    model: HookedSAETransformer, resid: Tensor, start: int, stop: int, final_query_only: bool = False, for_reverse_mode: bool = False
) -> tuple[Tensor, dict[str, Tensor]]:
    """`model(resid, start_at_layer=start, stop_at_layer=stop)`, and each block's input and z by hook name.

    With `final_query_only`, the last block runs at the final position only; on `for_reverse_mode`, see `block_forward`.
    """
    activations = {}
    for layer in range(start, stop):
        activations[get_act_name("resid_pre", layer)] = resid
        resid, activations[get_act_name("z", layer)] = block_forward(model.blocks[layer], resid, final_query_only and layer == stop - 1, for_reverse_mode)
    activations[get_act_name("resid_pre", stop)] = resid
    return resid, activations
