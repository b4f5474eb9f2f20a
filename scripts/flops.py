"""The benchmark's lower bound: the FLOPs each gradient computation needs, and the machine's matmul speed.

Useful FLOPs count the matrix products a Jacobian cannot avoid (2 FLOPs per multiply-add; elementwise
steps left out), in the mode the reference uses: forward mode (one tangent per input entry, one row per
position causality lets it reach, the encoder only for active later latents) or reverse mode (one
cotangent per top logit, the last block at the final query only). Added to that, once per call, the
primal passes every formulation pays for what the exercise returns. Divided by the single-thread
matmul speed measured in the same process, that is the time the call would take if every FLOP ran at
that speed. docs/performance.md states the count in full.
"""

from __future__ import annotations

import statistics
import time

import torch
from sae_lens import HookedSAETransformer
from torch import Tensor


def matmul_gflops(device: torch.device | str = "cpu", repeats: int = 5) -> float:
    """Float32 matmul speed in GFLOP/s, single-threaded on the CPU: the median of `repeats` products of
    the shape the Jacobians' MLPs multiply (a few hundred rows by GPT-2's (768, 3072) weights). The
    median, not the best: on a shared machine it sees the load the timed calls see."""
    device = torch.device(device)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, b = torch.randn(512, 768, device=device), torch.randn(768, 3072, device=device)
        a @ b  # warm-up
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return 2 * 512 * 768 * 3072 / statistics.median(seconds) / 1e9


def _per_row(model: HookedSAETransformer) -> dict[str, int]:
    cfg = model.cfg
    d_heads = cfg.n_heads * cfg.d_head
    return {
        "qkv": 3 * 2 * cfg.d_model * d_heads,
        "kv": 2 * 2 * cfg.d_model * d_heads,
        "q": 2 * cfg.d_model * d_heads,
        "out_mlp": 2 * d_heads * cfg.d_model + 2 * 2 * cfg.d_model * (cfg.d_mlp or 0),
        "pair": 8 * d_heads,  # a tangent's (query, key) pair: d_scores and dz, two products each
        "primal_pair": 4 * d_heads,  # the primal's: scores and z
        "d_heads": d_heads,
    }


def _active_per_position(latents: Tensor, seq: int) -> list[int]:
    """How many latents are active at each position, from a (batch 1) SparseTensor's indices."""
    return torch.bincount(latents.sparse[1][:, 1], minlength=seq).tolist()


def _primal_pass(model: HookedSAETransformer, seq: int, layers: range, from_z: bool = False, to_z: bool = False, last_query_only: bool = False) -> int:
    """Useful FLOPs of a plain forward pass at every position through `layers`: without the first
    block's attention if it starts at that block's hook_z (`from_z`), without the last block's output
    projection and MLP if it stops at its hook_z (`to_z`), and with the last block at the final query
    only (`last_query_only`: keys and values at every position, as TransformerLens's key-value cache)."""
    cost = _per_row(model)
    flops = 0
    for layer in layers:
        last = layer == layers[-1]
        if last and last_query_only:
            return flops + cost["kv"] * seq + cost["q"] + cost["primal_pair"] * seq + cost["out_mlp"]
        if not (layer == layers[0] and from_z):
            flops += cost["qkv"] * seq + cost["primal_pair"] * seq * (seq + 1) // 2
        if not (last and to_z):
            flops += cost["out_mlp"] * seq
    return flops


def _forward_column(model: HookedSAETransformer, source: int, seq: int, layer_from: int, from_z: bool, layer_to: int, to_z: bool, active_out: list[int], d_in: int) -> int:
    """Useful FLOPs of one forward-mode column entering at position `source`."""
    cost = _per_row(model)
    reached = 1  # rows: its own position until the first attention
    flops = 0
    for layer in range(layer_from, layer_to + 1):
        if layer == layer_to and not to_z:
            break
        if not (layer == layer_from and from_z):
            flops += cost["qkv"] * reached
            if reached == 1:
                # The first attention, with the tangent at `source` alone: its scores' tangent is
                # nonzero in row `source` (dq against keys 0..source) and column `source` (queries
                # source.. against dk), and z's needs that row against the values (see
                # solutions/forward_mode.py): no (query, key) matrix per tangent.
                flops += 2 * cost["d_heads"] * (2 * (source + 1) + (seq - source))
            else:
                flops += cost["pair"] * sum(query + 1 for query in range(source, seq))
            reached = seq - source
            if layer == layer_to:
                break
        flops += cost["out_mlp"] * reached
    return flops + 2 * d_in * sum(active_out[source : source + reached])


def _dense_encodes(n_saes: int, seq: int, d_in: int, d_sae: int) -> int:
    """Encoding every position densely, as each SAE activation tensor a function returns needs."""
    return n_saes * seq * 2 * d_in * d_sae


def latent_to_latent(model: HookedSAETransformer, result: tuple, layer_from: int, layer_to: int, attention: bool) -> float:
    """(Jacobian, earlier latents, later latents, later latents from the reconstruction), in forward mode."""
    prev, recon = result[1], result[3]
    seq = prev.dense.shape[1]
    active_out = _active_per_position(recon, seq)
    d_in = model.cfg.n_heads * model.cfg.d_head if attention else model.cfg.d_model
    columns = sum(
        _forward_column(model, source, seq, layer_from, attention, layer_to, attention, active_out, d_in)
        for source in prev.sparse[1][:, 1].tolist()
    )
    # What the returned activations need, whatever the formulation: the clean pass up to the later
    # SAE's hook, the pass from the earlier SAE's reconstruction to it (the Jacobian's primal), and
    # three dense encodings (earlier and later SAE on the clean pass, later SAE on the reconstruction).
    later = layer_to + 1 if attention else layer_to
    primal = _primal_pass(model, seq, range(0, later), to_z=attention) + _primal_pass(model, seq, range(layer_from, later), from_z=attention, to_z=attention)
    primal += _dense_encodes(3, seq, d_in, prev.dense.shape[-1]) + 2 * d_in * len(prev.sparse[0])
    return float(columns + primal)


def token_to_latent(model: HookedSAETransformer, result: tuple, layer: int) -> float:
    """(Jacobian, latents): one forward-mode column per position, entering before block 0."""
    latents = result[1]
    seq = latents.dense.shape[1]
    active_out = _active_per_position(latents, seq)
    columns = sum(_forward_column(model, source, seq, 0, False, layer, False, active_out, model.cfg.d_model) for source in range(seq))
    # The primal pass (at scale 1, the clean one) up to the SAE, and its dense encoding.
    primal = _primal_pass(model, seq, range(0, layer)) + _dense_encodes(1, seq, model.cfg.d_model, latents.dense.shape[-1])
    return float(columns + primal)


def latent_to_logit(model: HookedSAETransformer, result: tuple, layer: int) -> float:
    """(Jacobian, logits, logits_recon, token ids, latents): one reverse-mode row per logit."""
    k, latents = result[0].shape[0], result[4]
    seq = latents.dense.shape[1]
    cost = _per_row(model)
    last_block = cost["out_mlp"] + cost["q"] + cost["kv"] * seq + cost["pair"] * seq
    earlier_blocks = (model.cfg.n_layers - 1 - layer) * ((cost["qkv"] + cost["out_mlp"]) * seq + cost["pair"] * seq * (seq + 1) // 2)
    per_row = 2 * model.cfg.d_model + last_block + earlier_blocks + 2 * model.cfg.d_model * len(latents.sparse[0])
    # What the returned logits and latents need, whatever the formulation: the clean pass through the
    # whole model and the pass from the SAE's reconstruction (each with the last block at the final
    # query only), both unembedded at the final position (every logit: both are returned whole), and
    # the SAE's dense encoding.
    n_layers, d_model = model.cfg.n_layers, model.cfg.d_model
    primal = _primal_pass(model, seq, range(0, n_layers), last_query_only=True) + _primal_pass(model, seq, range(layer, n_layers), last_query_only=True)
    primal += 2 * 2 * d_model * model.cfg.d_vocab + _dense_encodes(1, seq, d_model, latents.dense.shape[-1]) + 2 * d_model * len(latents.sparse[0])
    return float(k * per_row + primal)
