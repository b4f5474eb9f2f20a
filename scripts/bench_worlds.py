"""The worlds the benchmark runs on: the course's small world, and a GPT-2-shaped one of random weights."""

from __future__ import annotations

import copy

import torch
from sae_lens import SAE

from part_utils.random_world import GPT2_SHAPE, WorldShape, build_random_world, set_thresholds
from part_utils.world_types import World


def small_world(device: torch.device | str = "cpu") -> World:
    """The toy world when its trained weights are here, else the tiny random world (printed by the caller)."""
    from part_utils.worlds import load_world

    try:
        return load_world("toy", device=device, verbose=False)
    except Exception as error:  # noqa: BLE001 (the toy world is optional here: fall back and say so)
        print(f"(toy world unavailable: {type(error).__name__}: {error}; using the tiny random world)")
        return load_world("random", device=device, verbose=False)


def gpt2_shaped_world(seed: int = 0, shape: WorldShape = GPT2_SHAPE, device: torch.device | str = "cpu") -> tuple[World, SAE]:
    """GPT-2 small's shape with random weights, its SAEs firing about `l0` latents per token like GPT-2's.

    Returns the world, and the SAE the token-to-latent exercise uses. The random world's own thresholds
    fire far more latents on the exercises' inputs than GPT-2's real SAEs (a random SAE reconstructs its
    input poorly, so a later SAE fires on most of its latents on the reconstruction), and every gradient
    computation's cost grows with that count. So the benchmark applies the random world's own rule
    (`set_thresholds`) with `z` picked per SAE, the one at which `l0` latents per token fire on the input
    the exercise differentiates: the clean input for an earlier SAE, the input computed from the earlier
    SAE's reconstruction for a later one. The token-to-latent exercise encodes the clean input of the
    later layer-3 SAE, so it gets its own copy of that SAE, calibrated on the clean input.
    """
    world = build_random_world(shape, seed=seed, device=device)
    model, ex = world.model, world.exercises
    l2l, ind = ex.latent_to_latent, ex.attention
    with torch.no_grad():
        tokens = model.to_tokens(l2l.prompt)
        _, cache = model.run_with_cache(tokens, names_filter=[_hook(world.saes[l2l.layer_from]), _hook(world.saes[l2l.layer_to])])
        sae_from = world.saes[l2l.layer_from]
        set_thresholds(sae_from, cache[_hook(sae_from)], shape.l0)
        token_sae = copy.deepcopy(world.saes[ex.token_to_latent.layer])
        set_thresholds(token_sae, cache[_hook(token_sae)] if ex.token_to_latent.layer == l2l.layer_to else _clean_input(world, token_sae, ex.token_to_latent.prompt), shape.l0)
        recon = model(sae_from.decode(sae_from.encode(cache[_hook(sae_from)])), start_at_layer=l2l.layer_from, stop_at_layer=l2l.layer_to)
        set_thresholds(world.saes[l2l.layer_to], recon, shape.l0)

        logit_sae = world.saes[ex.latent_to_logit.layer]
        set_thresholds(logit_sae, _clean_input(world, logit_sae, ex.latent_to_logit.prompt), shape.l0)

        tokens = ind.repeated_tokens(model)
        attn_from, attn_to = world.attn_saes[ind.layer_from], world.attn_saes[ind.layer_to]
        _, cache = model.run_with_cache(tokens, names_filter=[_hook(attn_from)])
        set_thresholds(attn_from, cache[_hook(attn_from)], shape.l0)
        z_recon = attn_from.decode(attn_from.encode(cache[_hook(attn_from)]))
        z_recon = z_recon.reshape(cache[_hook(attn_from)].shape)
        captured = {}
        with model.hooks(fwd_hooks=[(_hook(attn_from), lambda z, hook: z_recon), (_hook(attn_to), lambda z, hook: captured.setdefault("z", z))]):
            model(tokens, stop_at_layer=ind.layer_to + 1)
        set_thresholds(attn_to, captured["z"], shape.l0)
    return world, token_sae


def _hook(sae: SAE) -> str:
    return sae.cfg.metadata.hook_name


def _clean_input(world: World, sae: SAE, prompt: str) -> torch.Tensor:
    _, cache = world.model.run_with_cache(world.model.to_tokens(prompt), names_filter=_hook(sae))
    return cache[_hook(sae)]


def latents_per_token(world: World, token_sae: SAE | None = None) -> dict[str, float]:
    """Active latents per token on each exercise's inputs and outputs, for the benchmark's header."""
    import solutions

    model, ex = world.model, world.exercises
    l2l, ind, l2g = ex.latent_to_latent, ex.attention, ex.latent_to_logit
    token_sae = token_sae or world.saes[ex.token_to_latent.layer]
    out = {}
    with torch.enable_grad():
        tokens = model.to_tokens(l2l.prompt)
        _, prev, _, recon = solutions.latent_to_latent_gradients(tokens, world.saes[l2l.layer_from], world.saes[l2l.layer_to], model)
        out[f"resid L{l2l.layer_from}"] = len(prev.sparse[0]) / tokens.numel()
        out[f"resid L{l2l.layer_to} (from the reconstruction)"] = len(recon.sparse[0]) / tokens.numel()
        tokens = model.to_tokens(ex.token_to_latent.prompt)
        out[f"resid L{ex.token_to_latent.layer} (token_to_latent)"] = len(solutions.token_to_latent_gradients(tokens, token_sae, model)[1].sparse[0]) / tokens.numel()
        tokens = model.to_tokens(l2g.prompt)
        out[f"resid L{l2g.layer}"] = len(solutions.latent_to_logit_gradients(tokens, world.saes[l2g.layer], model, l2g.k)[4].sparse[0]) / tokens.numel()
        tokens = ind.repeated_tokens(model)
        _, prev, _, recon = solutions.latent_to_latent_gradients_attn(tokens, world.attn_saes[ind.layer_from], world.attn_saes[ind.layer_to], model)
        out[f"attn L{ind.layer_from}"] = len(prev.sparse[0]) / tokens.numel()
        out[f"attn L{ind.layer_to} (from the reconstruction)"] = len(recon.sparse[0]) / tokens.numel()
    return out
