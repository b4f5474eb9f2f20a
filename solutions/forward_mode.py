"""Forward-mode Jacobians that follow each tangent only where it is nonzero.

The three forward-mode exercises (latent to latent, token to latent, attention latent to latent)
differentiate with respect to one number at one position: an earlier latent, or a token's
embedding scale. `torch.func.jvp` would push that tangent through the model as a full
(seq, d_model) tensor, almost all zeros. Here each tangent is a set of rows, one per position where
it can be nonzero:

- it starts at its own position, and stays there through everything that works position by
  position (layer norms, the MLP, the attention's query/key/value and output projections): those
  run on one row per tangent instead of `seq`;
- only attention mixes positions, and causally: a tangent from position p reaches positions p and
  later, never earlier ones. After the first attention it has rows at p..seq-1, and the positions
  before p (zero by causality) are never computed;
- attention itself is differentiated once, explicitly (`_attention_z_jvp`), from the rows' query,
  key and value tangents;
- the later SAE's encoder multiplies each row only by the encoder columns of the latents active at
  that row's position, not every position by every active latent;
- the pass stops at the hook the later SAE reads: for an attention SAE, right after hook_z, so the
  last block's output projection and MLP (which feed nothing read) never run.

The Jacobian is the same as `torch.func.jacfwd`'s (up to float rounding), at a fraction of the work:
the benchmark's lower-bound column counts these rows. Only models whose blocks are the plain
pre-layer-norm kind (GPT-2's, and the toy world's with rotary embeddings) and plain ReLU SAEs have
these maths written out here; anything else goes through `sparse_jacobian`, which is always correct.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor

from solutions.jacobian import jacobian_chunk_size, sparse_jacobian
from solutions.sparse_sae import _is_plain_relu_sae


def supports_positionwise(model: HookedSAETransformer, saes: tuple[SAE, ...]) -> bool:
    """Whether every block is the plain kind written out below: pre-layer-norm attention then MLP."""
    cfg = model.cfg
    return (
        all(_is_plain_relu_sae(sae) for sae in saes)
        and cfg.positional_embedding_type in ("standard", "rotary")
        and cfg.attention_dir == "causal"
        and not (cfg.attn_only or cfg.parallel_attn_mlp or cfg.use_attn_in or cfg.use_split_qkv_input)
        and not (cfg.use_normalization_before_and_after or cfg.use_attention_sinks or cfg.use_logn_attn)
        and not (cfg.use_dynamic_ntk_rope or cfg.load_in_4bit or cfg.gated_mlp or cfg.num_experts)
        and not cfg.is_layer_norm_activation()
        and cfg.clip_qkv is None
        and cfg.n_key_value_heads is None
        and cfg.original_architecture in (None, "GPT2LMHeadModel")
    )


@dataclass
class Rows:
    """Tangents held as rows: row i is tangent `cols[i]` at position `positions[i]`; elsewhere it is zero."""

    cols: Tensor
    positions: Tensor
    values: Tensor

    def moved_to(self, cols: Tensor, positions: Tensor, n_cols: int, seq: int) -> Rows:
        """The same tangents on another set of rows (rows not held before are zero)."""
        return Rows(cols, positions, self.as_dense(n_cols, seq)[cols, positions])

    def as_dense(self, n_cols: int, seq: int) -> Tensor:
        """(n_cols, seq, ...): every tangent at every position, zeros where it has no row."""
        dense = self.values.new_zeros(n_cols, seq, *self.values.shape[1:])
        dense[self.cols, self.positions] = self.values
        return dense


def _causal_rows(sources: Tensor, seq: int) -> tuple[Tensor, Tensor]:
    """(cols, positions) of every position a tangent from `sources[col]` can reach: sources[col]..seq-1."""
    reachable = torch.arange(seq, device=sources.device)[None, :] >= sources[:, None]
    cols, positions = reachable.nonzero().unbind(-1)
    return cols, positions


def _jvp(fn: Callable[[Tensor], Tensor], primal: Tensor, tangent: Tensor) -> Tensor:
    return torch.func.jvp(fn, (primal,), (tangent,))[1]


def _attention_z_jvp(block: torch.nn.Module, primal: dict[str, Tensor], dq: Tensor, dk: Tensor, dv: Tensor) -> Tensor:
    """Tangent of the attention's z (n, seq, heads, d_head) given tangents of its pre-rotary q, k, v.

    Written with the attention module's own steps (rotary, scores, causal mask, softmax, z), so that
    it differentiates exactly what the model computes; the primal q, k, v are shared by all tangents.
    """
    attn = block.attn

    def z_of(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        if attn.cfg.positional_embedding_type == "rotary":
            q, k = attn.apply_rotary(q), attn.apply_rotary(k)
        scores = attn.apply_causal_mask(attn.calculate_attention_scores(q, k))
        pattern = torch.softmax(scores, dim=-1)
        pattern = torch.where(torch.isnan(pattern), torch.zeros_like(pattern), pattern)
        return attn.calculate_z_scores(v, pattern)[0]

    q, k, v = primal["q"], primal["k"], primal["v"]  # (1, seq, heads, d_head)

    def one(dq: Tensor, dk: Tensor, dv: Tensor) -> Tensor:
        return torch.func.jvp(z_of, (q, k, v), (dq[None], dk[None], dv[None]))[1]

    return torch.func.vmap(one)(dq, dk, dv)


def _attention_rows(block: torch.nn.Module, primal: dict[str, Tensor], d_resid: Rows, reach: tuple[Tensor, Tensor], n_cols: int) -> Rows:
    """Rows of the tangent of hook_z, from rows of the tangent of the block's input."""
    attn, seq = block.attn, primal["resid_pre"].shape[1]
    d_normalized = _jvp(block.ln1, primal["resid_pre"][0, d_resid.positions], d_resid.values)
    # Query, key and value are per-position linear maps of the normalised input: their tangents are
    # rows too (no bias: a tangent is a difference).
    d_qkv = [
        Rows(d_resid.cols, d_resid.positions, torch.einsum("md,hde->mhe", d_normalized, weight)).as_dense(n_cols, seq)
        for weight in (attn.W_Q, attn.W_K, attn.W_V)
    ]
    d_z = _attention_z_jvp(block, primal, *d_qkv)
    return Rows(*reach, d_z[reach])


def _after_attention_rows(block: torch.nn.Module, primal: dict[str, Tensor], d_resid: Rows, d_z: Rows) -> Rows:
    """Rows of the tangent of the block's output, from those of its input and of hook_z (same rows)."""
    d_resid_mid = d_resid.values + torch.einsum("mhe,hed->md", d_z.values, block.attn.W_O)

    # The MLP by hand, so that its hidden layer's primal is not recomputed for every row: the rows
    # at one position share it (`pre`, computed once per position from the primal resid_mid), and the
    # activation is elementwise, so its tangent is its slope at `pre` times the tangent of `pre`. `pre` is
    # not read from mlp.hook_pre: a deep-copied model's MLP calls the original's hook points (sae_lens).
    positions = d_z.positions
    d_normalized = _jvp(block.ln2, primal["resid_mid"][0, positions], d_resid_mid)
    pre = block.ln2(primal["resid_mid"][0]) @ block.mlp.W_in + block.mlp.b_in
    slope = _jvp(block.mlp.act_fn, pre, torch.ones_like(pre))
    d_resid_post = d_resid_mid + (slope[positions] * (d_normalized @ block.mlp.W_in)) @ block.mlp.W_out
    return Rows(d_z.cols, d_z.positions, d_resid_post)


def _encoder_jacobian(sae: SAE, active: Tensor, rows: Rows, n_cols: int) -> Tensor:
    """(n_active, n_cols): the later SAE's active pre-activations' tangents, a ReLU's slope being 1 where active.

    `active` is the later SAE's (1, seq, d_sae) activations; outputs are its positive entries in
    row-major order, as `encode_active` returns them.
    """
    _, out_positions, out_latents = (active > 0).nonzero().unbind(-1)
    values = rows.values.flatten(1)  # a hook_z SAE reads the heads concatenated
    jacobian = values.new_zeros(len(out_latents), n_cols)
    # Position by position: each row meets only the encoder columns of the latents active where it is.
    for position in out_positions.unique().tolist():
        outputs = (out_positions == position).nonzero()[:, 0]
        at_position = rows.positions == position
        products = values[at_position] @ sae.W_enc[:, out_latents[outputs]]
        jacobian[outputs[:, None], rows.cols[at_position][None, :]] = products.T
    return jacobian


@dataclass(frozen=True)
class Path:
    """Where the tangents enter and the later SAE reads: the layer, and whether at hook_z (else resid_pre)."""

    layer_from: int
    from_z: bool
    layer_to: int
    to_z: bool


def _primal_hooks(path: Path) -> list[str]:
    names = []
    for layer in range(path.layer_from, path.layer_to + 1):
        names += [f"blocks.{layer}.hook_resid_pre", f"blocks.{layer}.hook_resid_mid"]
        names += [f"blocks.{layer}.attn.hook_{x}" for x in "qkv"]
    return names


def _propagate(
    model: HookedSAETransformer, primals: dict[str, Tensor], path: Path, rows: Rows, n_cols: int, sources: Tensor, seq: int
) -> Rows:
    """The tangents' rows at the later SAE's hook, from their rows where they enter (at their own positions).

    A path with no block in between (an SAE at layer 0's resid_pre, fed by the embeddings) returns them as they are."""
    reach = _causal_rows(sources, seq)
    layer = path.layer_from
    d_resid: Rows | None = None if path.from_z else rows
    d_z: Rows | None = rows if path.from_z else None
    while True:
        if d_z is None and layer == path.layer_to and not path.to_z:
            return d_resid
        block = model.blocks[layer]
        primal = {
            "resid_pre": primals[f"blocks.{layer}.hook_resid_pre"],
            "resid_mid": primals.get(f"blocks.{layer}.hook_resid_mid"),
            **{x: primals[f"blocks.{layer}.attn.hook_{x}"] for x in "qkv"},
        }
        if d_z is None:
            d_z = _attention_rows(block, primal, d_resid, reach, n_cols)
            if layer == path.layer_to:
                return d_z
        if d_resid is None:
            d_resid = Rows(d_z.cols, d_z.positions, d_z.values.new_zeros(len(d_z.cols), model.cfg.d_model))
        else:
            d_resid = d_resid.moved_to(d_z.cols, d_z.positions, n_cols, seq)
        d_resid = _after_attention_rows(block, primal, d_resid, d_z)
        d_z, layer = None, layer + 1


def positionwise_jacobian(
    fn: Callable[..., tuple[Tensor, Any]],
    inputs: Tensor,
    args: tuple[Any, ...],
    model: HookedSAETransformer,
    sae_from: SAE | None,
    sae_to: SAE,
    path: Path,
    entering_rows: Callable[[Tensor], tuple[Tensor, Tensor]],
) -> tuple[Tensor, Any]:
    """`jacfwd(fn, has_aux=True)(inputs, *args)` for the exercises' maps, following tangents row by row.

    `fn(inputs, *args)` returns (values of the later SAE's active latents, (its dense activations,)).
    `entering_rows(columns)` gives, for those input entries, each one's position and its tangent
    there at the entry point of `path` (a residual-stream or a hook_z vector); `sae_from` is the
    SAE whose decoder gives them, if any. Falls back to `sparse_jacobian` for models and SAEs this
    module does not write out.
    """
    if not supports_positionwise(model, (sae_to,) if sae_from is None else (sae_from, sae_to)):
        return sparse_jacobian(fn, inputs, args, inputs.numel(), model)
    # One plain forward pass of `fn` itself gives the outputs and, through hooks, the activations the
    # tangents are linearised at (the primal pass: shared by every column).
    primals: dict[str, Tensor] = {}

    def record(activation: Tensor, hook: Any) -> None:
        primals[hook.name] = activation

    with torch.no_grad(), model.hooks(fwd_hooks=[(name, record) for name in _primal_hooks(path)]):
        outputs, aux = fn(inputs, *args)
    n_out, n_in = outputs.numel(), inputs.numel()
    active = aux[0]
    if active.shape[0] != 1:  # the rows below index a batch of one prompt, as every exercise has
        return sparse_jacobian(fn, inputs, args, n_in, model)
    if n_out == 0 or n_in == 0:
        return inputs.new_zeros((*outputs.shape, *inputs.shape)), aux
    seq = active.shape[1]
    jacobian = outputs.new_zeros(n_out, n_in)
    # Columns in chunks, so that a long prompt's rows (up to seq per column, d_mlp wide) stay bounded.
    chunk = jacobian_chunk_size(n_in, seq, model) or n_in
    with torch.no_grad():
        for start in range(0, n_in, chunk):
            columns = torch.arange(start, min(start + chunk, n_in), device=inputs.device)
            sources, tangents = entering_rows(columns)
            rows = Rows(torch.arange(len(columns), device=inputs.device), sources, tangents)
            at_sae = _propagate(model, primals, path, rows, len(columns), sources, seq)
            jacobian[:, start : start + len(columns)] = _encoder_jacobian(sae_to, active, at_sae, len(columns))
    return jacobian.reshape(*outputs.shape, *inputs.shape), aux
