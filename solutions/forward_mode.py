"""Forward-mode Jacobians that follow each tangent only where it is nonzero.

The forward-mode exercises (latent to latent, token to latent, attention) differentiate with respect to
one number at one position. `torch.func.jvp` would push that tangent through the model as a full
(seq, d_model) tensor, almost all zeros; here each tangent is a set of rows, one per position where it
can be nonzero: its own position until the first attention, then that position and the later ones
(causality). Attention is differentiated explicitly (`_attention_z_jvp`, and
`_attention_z_jvp_one_position` at the first attention, where no (seq, seq) tangent is formed); the
later SAE's encoder meets each row only through the columns of the latents active there
(`_ActiveEncoder`); the pass stops at the hook the later SAE reads; the primal pass rides in the same
products (`_stacked`). The Jacobian equals `torch.func.jacfwd`'s up to float rounding. Only plain
pre-layer-norm blocks and plain ReLU SAEs are written out here; anything else goes through
`sparse_jacobian`. docs/performance.md gives the reasoning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor
from transformer_lens.components import LayerNorm, LayerNormPre

from solutions.jacobian import positionwise_chunk_size, sparse_jacobian
from solutions.plain_forward import has_plain_blocks, slope
from solutions.sparse_sae import _is_plain_relu_sae, encode_dense


def supports_positionwise(model: HookedSAETransformer, saes: tuple[SAE, ...]) -> bool:
    """Whether every block is the plain kind written out below (pre-layer-norm attention then MLP) and every SAE a plain ReLU one."""
    return all(_is_plain_relu_sae(sae) for sae in saes) and has_plain_blocks(model)


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
    """(cols, positions) of every position a tangent from `sources[col]` can reach: sources[col]..seq-1.

    Position by position, so that the rows at one position are consecutive (see `_ActiveEncoder`)."""
    reachable = torch.arange(seq, device=sources.device)[:, None] >= sources[None, :]
    positions, cols = reachable.nonzero().unbind(-1)
    return cols, positions


def _jvp(fn: Callable[[Tensor], Tensor], primal: Tensor, tangent: Tensor) -> Tensor:
    return torch.func.jvp(fn, (primal,), (tangent,))[1]


def _layer_norm_jvp(norm: torch.nn.Module, x: Tensor, dx: Tensor) -> Tensor:
    """Tangent of a layer norm at rows `x`, for row tangents `dx`.

    TransformerLens's LayerNorm(Pre) is x_hat = (x - mean) / scale, scale = sqrt(mean((x - mean)^2) + eps),
    times w plus b (LayerNorm only); its tangent is (dx_c - x_hat mean(x_hat dx_c)) / scale, times w,
    with dx_c = dx - mean(dx). Written out because `torch.func.jvp` costs about a millisecond of set-up
    per call, as much as the arithmetic on a few hundred rows; any other norm goes through it.
    """
    if type(norm) not in (LayerNorm, LayerNormPre):
        return _jvp(norm, x, dx)
    centred = x - x.mean(-1, keepdim=True)
    scale = (centred.pow(2).mean(-1, keepdim=True) + norm.eps).sqrt()
    normalized = centred / scale
    d_centred = dx - dx.mean(-1, keepdim=True)
    d_normalized = (d_centred - normalized * (normalized * d_centred).mean(-1, keepdim=True)) / scale
    return d_normalized * norm.w if isinstance(norm, LayerNorm) else d_normalized


@dataclass
class _Attention:
    """One block's primal attention at every position: what its tangent is linearised at, shared by every tangent."""

    attn: torch.nn.Module
    q: Tensor  # (seq, heads, d_head), after the rotary embedding where the model has one
    k: Tensor
    v: Tensor
    pattern: Tensor  # (heads, query, key)
    z: Tensor  # (seq, heads, d_head)


def _stacked(primal: Tensor, tangent: Tensor, product: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor]:
    """`product` of the primal rows and of the tangent rows, in one product.

    At a prompt's few positions a product is limited by reading its weight from memory, not by the
    arithmetic: stacked, the primal's rows ride along with the tangents' for little more than the
    tangents' own cost, where a separate primal pass would read every weight once more.
    """
    both = product(torch.cat([primal, tangent]))
    return both[: len(primal)], both[len(primal) :]


def _per_head(weight: Tensor) -> Callable[[Tensor], Tensor]:
    """Rows (n, d_model) against an attention weight as stored, (heads, d_model, d_head): (n, heads, d_head).

    A product batched over heads reads the weight in place; TransformerLens's attention copies W_Q,
    W_K and W_V into a new layout on every call, which costs as much again at a prompt's few rows. The
    result is laid out row by row (a copy of the rows, not of the weight): the attention's tangents
    gather rows from it."""
    return lambda rows: torch.matmul(rows, weight).transpose(0, 1).contiguous()


def _attention_z_jvp(primal: _Attention, dq: Tensor, dk: Tensor, dv: Tensor) -> Tensor:
    """Tangent of the attention's z (n, seq, heads, d_head) from dense tangents of its q, k, v (same shape).

    The attention is scores = q k / scale, pattern = causal softmax(scores), z = pattern v, so with the
    primal pattern shared by all tangents: d_scores = (dq k + q dk) / scale, d_pattern = pattern *
    (d_scores - the pattern-weighted mean of d_scores), dz = d_pattern v + pattern dv. Masked entries
    need no mask: their pattern is 0, and so is their d_pattern. Written out rather than pushed
    through `torch.func.jvp` of the module's steps: the primal pattern is computed once per call, and
    each tangent costs four batched products.
    """
    attn = primal.attn
    if attn.cfg.positional_embedding_type == "rotary":  # the rotary embedding is linear at each position
        dq, dk = attn.apply_rotary(dq), attn.apply_rotary(dk)
    pattern = primal.pattern
    d_scores = (torch.einsum("nqhe,khe->nhqk", dq, primal.k) + torch.einsum("qhe,nkhe->nhqk", primal.q, dk)) / attn.attn_scale
    d_pattern = pattern * (d_scores - (pattern * d_scores).sum(-1, keepdim=True))
    return torch.einsum("nhqk,khe->nqhe", d_pattern, primal.v) + torch.einsum("hqk,nkhe->nqhe", pattern, dv)


def _rotary_at(attn: torch.nn.Module, positions: Tensor, x: Tensor) -> Tensor:
    """`attn.apply_rotary` of vectors (n, heads, d_head), the i-th at position `positions[i]` (its tables, its rotation)."""
    rotary_dim = attn.cfg.rotary_dim
    x_rot, x_pass = x[..., :rotary_dim], x[..., rotary_dim:]
    cos, sin = attn.rotary_cos[positions, None, :], attn.rotary_sin[positions, None, :]
    return torch.cat([x_rot * cos + attn.rotate_every_two(x_rot) * sin, x_pass], dim=-1)


def _attention_z_jvp_one_position(primal: _Attention, sources: Tensor, dq: Tensor, dk: Tensor, dv: Tensor, reach: tuple[Tensor, Tensor]) -> Tensor:
    """Rows `reach` of the tangent of z, for tangents of q, k, v (n, heads, d_head) each at its column's source only.

    This is the first attention a tangent meets, where it is still at one position p. Then d_scores
    is nonzero in row p (a_j = dq_p k_j / scale) and column p (b_i = q_i dk_p / scale) only, and the
    general formula (`_attention_z_jvp`) collapses, for each query i, to
        dz_i = P_ip (b_i (v_p - z_i) + dv_p) + [i = p] (sum_j P_pj a_j v_j - (sum_j P_pj a_j) z_p),
    with P the primal pattern and z the primal output: a few products of length seq per tangent, not
    a (seq, seq) matrix each. It is computed query by query, straight into the rows (which come query
    by query, `_causal_rows`): each step's operands are a few MB, where one (seq, n) grid would be
    written and read several times over.
    """
    attn = primal.attn
    if attn.cfg.positional_embedding_type == "rotary":
        dq, dk = _rotary_at(attn, sources, dq), _rotary_at(attn, sources, dk)
    pattern, z = primal.pattern, primal.z
    a = torch.einsum("nhe,khe->nhk", dq, primal.k) / attn.attn_scale
    b = torch.einsum("qhe,nhe->qnh", primal.q, dk) / attn.attn_scale
    weighted = pattern[:, sources].transpose(0, 1) * a  # P_pj a_j: (n, heads, key)
    own_row = torch.einsum("nhk,khe->nhe", weighted, primal.v) - weighted.sum(-1)[..., None] * z[sources]
    cols, queries = reach
    d_z = dv.new_empty(len(cols), *dv.shape[1:])
    positions, counts = torch.unique_consecutive(queries, return_counts=True)
    start = 0
    for query, count in zip(positions.tolist(), counts.tolist()):
        # The columns that reach this query are the first `count`, their sources coming in order
        # (`positionwise_jacobian`): slices of dv and b, not copies. The rows are thousands (every
        # column at every later query), and each pass over them costs more than its arithmetic, so
        # they are written in place, v_p - z_i taken at the seq positions and gathered straight into them.
        at, source = d_z[start : start + count], sources[:count]
        weight = pattern[:, query, source].T[..., None]  # P_ip: (rows, heads, 1)
        torch.index_select(primal.v - primal.z[query], 0, source, out=at)
        at.mul_(weight * b[query, :count, :, None]).addcmul_(weight, dv[:count])
        start += count
    own = (queries == sources[cols]).nonzero()[:, 0]
    d_z[own] += own_row[cols[own]]
    return d_z


def _attention(block: torch.nn.Module, resid: Tensor, d_resid: Rows, reach: tuple[Tensor, Tensor], n_cols: int, first: bool) -> tuple[Tensor, Rows]:
    """The block's primal z (seq, heads, d_head) and the rows `reach` of its tangent, from the block's input and its tangent's rows.

    `first`: the first attention on the path, before which every tangent is one row, at its own position."""
    attn, seq = block.attn, resid.shape[0]
    normalized = block.ln1(resid)
    d_normalized = _layer_norm_jvp(block.ln1, resid[d_resid.positions], d_resid.values)
    # Query, key and value are per-position linear maps of the normalised input: their tangents are
    # rows too (no bias: a tangent is a difference).
    (q, dq), (k, dk), (v, dv) = (_stacked(normalized, d_normalized, _per_head(w)) for w in (attn.W_Q, attn.W_K, attn.W_V))
    q, k, v = q + attn.b_Q, k + attn.b_K, v + attn.b_V
    if attn.cfg.positional_embedding_type == "rotary":
        q, k = attn.apply_rotary(q[None])[0], attn.apply_rotary(k[None])[0]
    scores = attn.apply_causal_mask(torch.einsum("qhe,khe->hqk", q, k)[None] / attn.attn_scale)[0]
    pattern = torch.softmax(scores, dim=-1)
    primal = _Attention(attn, q, k, v, pattern, torch.einsum("hqk,khe->qhe", pattern, v))
    if first:
        return primal.z, Rows(*reach, _attention_z_jvp_one_position(primal, d_resid.positions, dq, dk, dv, reach))
    dense = Rows(d_resid.cols, d_resid.positions, torch.stack([dq, dk, dv], 1)).as_dense(n_cols, seq)
    d_z = _attention_z_jvp(primal, dense[:, :, 0], dense[:, :, 1], dense[:, :, 2])
    return primal.z, Rows(*reach, d_z[reach])


def _after_attention(block: torch.nn.Module, resid: Tensor, z: Tensor, d_resid: Rows, d_z: Rows) -> tuple[Tensor, Rows]:
    """The block's primal output and its tangent's rows, from its input and z, and their tangents' rows (the same rows)."""
    attn, mlp, positions = block.attn, block.mlp, d_z.positions
    w_out = attn.W_O.flatten(0, 1)  # (heads, d_head, d_model) is already a (heads * d_head, d_model) matrix
    attn_out, d_attn_out = _stacked(z.flatten(1), d_z.values.flatten(1), lambda rows: rows @ w_out)
    resid_mid, d_resid_mid = resid + attn_out + attn.b_O, d_resid.values + d_attn_out
    # The MLP by hand: its activation is elementwise, so its tangent is the activation's slope at
    # each position's primal hidden layer, times the tangent of its input.
    pre, d_pre = _stacked(block.ln2(resid_mid), _layer_norm_jvp(block.ln2, resid_mid[positions], d_resid_mid), lambda rows: rows @ mlp.W_in)
    pre = pre + mlp.b_in
    mlp_out, d_mlp_out = _stacked(mlp.act_fn(pre), slope(mlp.act_fn, pre)[positions] * d_pre, lambda rows: rows @ mlp.W_out)
    return resid_mid + mlp_out + mlp.b_out, Rows(d_z.cols, positions, d_resid_mid + d_mlp_out)


class _ActiveEncoder:
    """The later SAE's encoder, restricted to its active latents, for the tangents' rows.

    `active` is the later SAE's (1, seq, d_sae) activations; outputs are its positive entries in
    row-major order, as `encode_active` returns them, so each position's outputs are consecutive.
    The active encoder columns are gathered once per call (a strided gather from a d_sae-wide matrix).
    """

    def __init__(self, sae: SAE, active: Tensor):
        _, out_positions, out_latents = (active > 0).nonzero().unbind(-1)
        self.n_out = len(out_latents)
        self.w_enc = torch.index_select(sae.W_enc, 1, out_latents)  # several times faster than W_enc[:, out_latents]
        positions, counts = torch.unique_consecutive(out_positions, return_counts=True)
        ends = counts.cumsum(0).tolist()
        self.slices = {p: slice(end - n, end) for p, n, end in zip(positions.tolist(), counts.tolist(), ends)}

    def jacobian(self, rows: Rows, n_cols: int) -> Tensor:
        """(n_out, n_cols): the active pre-activations' tangents, a ReLU's slope being 1 where active."""
        values = rows.values.flatten(1)  # a hook_z SAE reads the heads concatenated
        jacobian = values.new_zeros(self.n_out, n_cols)
        # Position by position: each row meets only the encoder columns of the latents active where it is.
        # Rows come position by position (`_causal_rows`), so each position's rows are a slice, not a copy.
        positions, counts = torch.unique_consecutive(rows.positions, return_counts=True)
        starts = (counts.cumsum(0) - counts).tolist()
        for position, start, count in zip(positions.tolist(), starts, counts.tolist()):
            if position in self.slices:
                outputs, at_position = self.slices[position], slice(start, start + count)
                jacobian[outputs, rows.cols[at_position]] = (values[at_position] @ self.w_enc[:, outputs]).T
        return jacobian


@dataclass(frozen=True)
class Path:
    """Where the tangents enter and the later SAE reads: the layer, and whether at hook_z (else resid_pre)."""

    layer_from: int
    from_z: bool
    layer_to: int
    to_z: bool


def _propagate(model: HookedSAETransformer, path: Path, resid: Tensor, z: Tensor | None, rows: Rows, n_cols: int, seq: int) -> tuple[Tensor, Rows]:
    """The primal activation at the later SAE's hook and the tangents' rows there, from those where they enter.

    `resid` is the primal input of block `path.layer_from` (seq, d_model); where the path enters at
    its hook_z, `z` is the primal z there (seq, heads, d_head) and the tangents' rows are at hook_z.
    The primal goes along block by block, in the same products as the tangents (`_stacked`). A path
    with no block in between (an SAE at layer 0's resid_pre, fed by the embeddings) returns both as
    they are.
    """
    reach = _causal_rows(rows.positions, seq)
    d_resid, d_z = (None, rows) if path.from_z else (rows, None)
    for layer in range(path.layer_from, path.layer_to + 1):
        block = model.blocks[layer]
        if layer == path.layer_to and not path.to_z:
            break
        if d_z is None:
            # The path's first attention is its earlier layer's, or the next layer's where it enters after it (at hook_z).
            first = layer == (path.layer_from + 1 if path.from_z else path.layer_from)
            z, d_z = _attention(block, resid, d_resid, reach, n_cols, first)
            if layer == path.layer_to:
                return z, d_z
        if d_resid is None:
            d_resid = Rows(d_z.cols, d_z.positions, d_z.values.new_zeros(len(d_z.cols), resid.shape[-1]))
        else:
            d_resid = d_resid.moved_to(d_z.cols, d_z.positions, n_cols, seq)
        resid, d_resid = _after_attention(block, resid, z, d_resid, d_z)
        d_z = None
    return resid, d_resid


def positionwise_jacobian(
    fn: Callable[..., tuple[Tensor, Any]],
    inputs: Tensor,
    args: tuple[Any, ...],
    model: HookedSAETransformer,
    sae_from: SAE | None,
    sae_to: SAE,
    path: Path,
    entry: tuple[Tensor, Tensor | None],
    entering_rows: Callable[[Tensor], tuple[Tensor, Tensor]],
    clean_input: Tensor | None = None,
) -> tuple[Tensor, Any]:
    """`jacfwd(fn, has_aux=True)(inputs, *args)` for the exercises' maps, following tangents row by row.

    `fn(inputs, *args)` returns (values of the later SAE's active latents, (its dense activations,)).
    `entry` is what `fn` computes at the entry point of `path`: the input of block `path.layer_from`
    (batch, seq, d_model) and, where the path enters at its hook_z, the z there (batch, seq, heads,
    d_head), else None. `entering_rows(columns)` gives, for those input entries, each one's position
    and its tangent there (a residual-stream or a hook_z vector), the positions in order (a
    SparseTensor's indices and a prompt's positions come so); `sae_from` is the SAE whose decoder
    gives them, if any. The rest of `fn` (the blocks in between and the later SAE) is followed here,
    primal and tangents together. Falls back to `sparse_jacobian` for models and SAEs this module
    does not write out.

    Given `clean_input`, the later SAE's input on the clean prompt, its dense activations are
    returned after `fn`'s, in the aux tuple: they are encoded in the same product as the
    reconstruction's, which reads all of the (d_in, d_sae) encoder, on a CPU longer than the arithmetic.
    """
    resid, z = entry
    n_in = inputs.numel()
    plain = supports_positionwise(model, (sae_to,) if sae_from is None else (sae_from, sae_to))
    if not plain or resid.shape[0] != 1 or n_in == 0:  # the rows below index a batch of one prompt, as every exercise has
        jacobian, aux = sparse_jacobian(fn, inputs, args, n_in, model)
        if clean_input is not None:
            with torch.no_grad():
                aux = (*aux, encode_dense(sae_to, clean_input))
        return jacobian, aux
    seq = resid.shape[1]
    # Columns in chunks, so that a long prompt's rows (up to seq per column, d_mlp wide) stay bounded.
    # Each chunk carries the primal pass along in its products (`_propagate`): seq rows more, against
    # up to seq per column.
    chunk = positionwise_chunk_size(n_in, seq, model)
    with torch.no_grad():
        for start in range(0, n_in, chunk):
            columns = torch.arange(start, min(start + chunk, n_in), device=inputs.device)
            sources, tangents = entering_rows(columns)
            if not bool((sources[1:] >= sources[:-1]).all()):
                raise ValueError("entering_rows must give the columns' positions in order (see _attention_z_jvp_one_position)")
            rows = Rows(torch.arange(len(columns), device=inputs.device), sources, tangents)
            at_sae, rows_at_sae = _propagate(model, path, resid[0], None if z is None else z[0], rows, len(columns), seq)
            if start == 0:
                encoded = encode_dense(sae_to, at_sae[None] if clean_input is None else torch.cat([at_sae[None], clean_input]))
                active, clean = encoded[:1], encoded[1:]
                encoder = _ActiveEncoder(sae_to, active)
                jacobian = at_sae.new_zeros(encoder.n_out, n_in)
            jacobian[:, start : start + len(columns)] = encoder.jacobian(rows_at_sae, len(columns))
    # The outputs are the active latents' values, as `fn` returns them (its `encode_active`).
    outputs = active[active > 0]
    return jacobian.reshape(*outputs.shape, *inputs.shape), (active,) if clean_input is None else (active, clean)
