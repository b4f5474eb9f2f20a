"""The reference solutions are right: they equal the straightforward formulation, and an oracle.

The references are written for speed (sparse SAE maps, forward or reverse mode, chunks), so each
gradient computation is checked two ways on the tiny world: against `solutions/straightforward.py`
(the spec's dense formulation, all outputs), and against central finite differences of the same map
written from scratch in float64 (no torch.func, no sae_lens encode/decode), on a few Jacobian entries.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from sae_lens import SAE, StandardSAE
from torch import Tensor
from transformer_lens.utilities import get_act_name

import solutions
import solutions.straightforward as straightforward
from part_utils.hooks import _get_hook_layer
from part_utils.random_world import TINY_SHAPE, build_random_world
from part_utils.world_types import World
from tests.exercises import BY_NAME

STEP = 1e-4  # central differences in float64: truncation ~STEP**2, rounding ~1e-16 / STEP
N_ENTRIES = 6  # Jacobian entries checked per computation: the largest, and a seeded random few

# Every reference against two other formulations, one of them finite differences in float64: the slow tier.
pytestmark = pytest.mark.slow


# ------------------------------------------------------------------------------------ shared helpers
def reference_agreeing_with_straightforward(exercise: str, args: tuple) -> object:
    """The exercise's reference result on `args`, after checking that its straightforward formulation agrees."""
    row = BY_NAME[exercise]
    with torch.enable_grad():
        result = row.reference(*args)
        assert_same_results(result, row.straightforward(*args))
    return result


def assert_same_results(got: object, want: object, name: str = "result") -> None:
    """Every output of the reference equals the straightforward one's, up to float32 rounding."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), name
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_results(g, w, f"{name}[{i}]")
    elif hasattr(want, "dense"):
        assert_same_results(got.dense, want.dense, f"{name}.dense")
        assert torch.equal(got.sparse[1], want.sparse[1]), f"{name}: different active latents"
    elif isinstance(want, Tensor):
        scale = float(want.detach().abs().max()) if want.numel() else 1.0
        torch.testing.assert_close(got.detach(), want.detach(), rtol=1e-4, atol=1e-5 * scale + 1e-7, msg=name)
    else:
        assert got == want, name


@pytest.fixture(scope="module")
def world64(tiny_world: World) -> World:
    """The tiny world in float64, for the finite-difference oracle (the tiny world itself stays float32).

    Built again from its seed rather than deep-copied: sae_lens wraps each MLP's forward in a closure
    over the original module, so a deep copy of a HookedSAETransformer still runs the original MLPs.
    """
    world = build_random_world(TINY_SHAPE, seed=0, device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(world.model.parameters(), tiny_world.model.parameters()))
    saes = [world.saes[layer] for layer in world.exercises.residual_layers]
    saes += [world.attn_saes[layer] for layer in world.exercises.attention_layers]  # calibrated in float32
    for sae in saes:
        sae.to(torch.float64)
    world.model.to(torch.float64)
    return world


def decode(sae: SAE, dense: Tensor, d_head: int) -> Tensor:
    """A plain ReLU SAE's decoder, by hand."""
    assert type(sae) is StandardSAE and sae.cfg.normalize_activations == "none"
    out = dense @ sae.W_dec + sae.b_dec
    return out.unflatten(-1, (-1, d_head)) if sae.cfg.reshape_activations == "hook_z" else out


def encode(sae: SAE, x: Tensor) -> Tensor:
    """A plain ReLU SAE's encoder, by hand."""
    assert type(sae) is StandardSAE and sae.cfg.normalize_activations == "none"
    if sae.cfg.reshape_activations == "hook_z":
        x = x.flatten(-2)
    return torch.relu((x - sae.b_dec * sae.cfg.apply_b_dec_to_input) @ sae.W_enc + sae.b_enc)


def dense_of(values: Tensor, indices: Tensor, shape: tuple[int, ...]) -> Tensor:
    dense = values.new_zeros(shape)
    dense[indices.unbind(-1)] = values
    return dense


def entries_to_check(jacobian: Tensor, allowed: Tensor | None = None) -> list[tuple[int, ...]]:
    """The largest entries of the Jacobian and a few random ones (seeded), among `allowed` entries."""
    magnitude = jacobian.detach().abs().clone()
    if allowed is not None:
        magnitude[~allowed] = -1
    flat = magnitude.flatten()
    largest = flat.topk(N_ENTRIES // 2).indices.tolist()
    candidates = (flat >= 0).nonzero().flatten()
    generator = torch.Generator().manual_seed(0)
    random = candidates[torch.randperm(len(candidates), generator=generator)[: N_ENTRIES - len(largest)]].tolist()
    return [tuple(int(i) for i in torch.unravel_index(torch.tensor(e), jacobian.shape)) for e in (*largest, *random)]


def central_difference(f: Callable[[Tensor], Tensor], x: Tensor, input_index: tuple[int, ...], output_index: tuple[int, ...]) -> float:
    step = torch.zeros_like(x)
    step[input_index] = STEP
    with torch.no_grad():
        return float((f(x + step)[output_index] - f(x - step)[output_index]) / (2 * STEP))


def assert_matches_oracle(jacobian: Tensor, oracle: list[float], entries: list[tuple[int, ...]]) -> None:
    got = torch.tensor([float(jacobian.detach()[e]) for e in entries], dtype=torch.float64)
    want = torch.tensor(oracle, dtype=torch.float64)
    scale = float(jacobian.detach().abs().max())
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4 * scale + 1e-7, msg=f"entries {entries}")


def active_with_margin(sparse_tensor: object, margin: float = 1e-3) -> Tensor:
    """Which active latents are far enough from zero that a step of STEP cannot switch them off."""
    return sparse_tensor.sparse[0] > margin


def latent_pair_reference(exercise: str, args: tuple) -> tuple[Tensor, Tensor, Tensor, tuple, object]:
    """An exercise between two SAEs' latents: the reference's Jacobian (checked against the straightforward
    formulation, one row per later and one column per earlier active latent), the earlier latents' values
    (float64), indices and shape, and the later latents."""
    grads, prev, _, next_recon = reference_agreeing_with_straightforward(exercise, args)
    assert grads.shape == (len(next_recon.sparse[0]), len(prev.sparse[0]))
    values, indices, shape = prev.sparse
    return grads, values.detach().to(torch.float64), indices, shape, next_recon


def assert_latent_pair_matches_oracle(grads: Tensor, later_latents: Callable[[Tensor], Tensor], values: Tensor, next_recon: object) -> None:
    """The Jacobian's largest and a few random entries against central differences of `later_latents`."""
    entries = entries_to_check(grads, active_with_margin(next_recon)[:, None].expand_as(grads))
    oracle = [central_difference(later_latents, values, (col,), (row,)) for row, col in entries]
    assert_matches_oracle(grads, oracle, entries)


# ------------------------------------------------------------------------------------------- the tests
@pytest.mark.sparse_tensor
def test_sparse_tensor_reference() -> None:
    """SparseTensor against torch's own sparse COO format (coalesced: row-major order), both ways."""
    generator = torch.Generator().manual_seed(0)
    for shape in ((50,), (3, 40), (2, 5, 30), (2, 2, 3, 7)):
        dense = torch.relu(torch.randn(shape, generator=generator) - 1.0)
        coo = dense.to_sparse().coalesce()
        sparse_tensor = solutions.SparseTensor.from_dense(dense)
        values, indices, got_shape = sparse_tensor.sparse
        assert torch.equal(values, coo.values()) and torch.equal(indices, coo.indices().T) and got_shape == shape
        assert torch.equal(solutions.SparseTensor.from_sparse((values, indices, got_shape)).dense, dense)


@pytest.mark.latent_to_latent
@pytest.mark.token_to_latent
@pytest.mark.latent_to_logit
@pytest.mark.attention
@pytest.mark.parametrize("slab_rows", [16, 24])  # 24 leaves a short last slab of the 64-wide input
@pytest.mark.parametrize("rows", [1, 9, 31, 32, 40])  # in slabs under 32 rows, one product from 32 on
def test_dense_encoding_equals_the_encoder(tiny_world: World, rows: int, slab_rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """`encode_dense`, which the references use for every dense SAE activation, equals the encoder by
    hand on a residual and a hook_z SAE, and runs the SAE's hooks as `sae.encode` does."""
    import solutions.sparse_sae

    monkeypatch.setattr(solutions.sparse_sae, "_SLAB_ROWS", slab_rows)
    ex, generator = tiny_world.exercises, torch.Generator().manual_seed(rows)
    cfg, seen = tiny_world.model.cfg, []
    for sae, shape in ((tiny_world.saes[ex.token_to_latent.layer], (1, rows, cfg.d_model)), (tiny_world.attn_saes[ex.attention.layer_from], (1, rows, cfg.n_heads, cfg.d_head))):
        x = torch.randn(shape, generator=generator)
        seen.clear()
        sae.hook_sae_acts_post.add_hook(lambda acts, hook: seen.append(acts.shape))
        try:
            with torch.no_grad():
                got, want = solutions.sparse_sae.encode_dense(sae, x), encode(sae, x)
        finally:
            sae.reset_hooks()
        assert seen == [want.shape] and (want > 0).any()
        # float32 sums of 64 products in another order: rounding of a few ulps of the largest term
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))


@pytest.mark.latent_to_latent
def test_latent_to_latent_reference(tiny_world: World, world64: World) -> None:
    ex = tiny_world.exercises.latent_to_latent
    model = tiny_world.model
    tokens = model.to_tokens(ex.prompt)
    args = (tokens, tiny_world.saes[ex.layer_from], tiny_world.saes[ex.layer_to], model)
    grads, values, indices, shape, next_recon = latent_pair_reference("latent_to_latent", args)
    m64, sae_from, sae_to = world64.model, world64.saes[ex.layer_from], world64.saes[ex.layer_to]
    rows = next_recon.sparse[1]

    def later_latents(values: Tensor) -> Tensor:
        resid = m64(decode(sae_from, dense_of(values, indices, shape), m64.cfg.d_head), start_at_layer=ex.layer_from, stop_at_layer=ex.layer_to)
        return encode(sae_to, resid)[rows.unbind(-1)]

    assert_latent_pair_matches_oracle(grads, later_latents, values, next_recon)


@pytest.mark.token_to_latent
def test_token_to_latent_reference(tiny_world: World, world64: World) -> None:
    ex = tiny_world.exercises.token_to_latent
    model = tiny_world.model
    tokens = model.to_tokens(ex.prompt)
    args = (tokens, tiny_world.saes[ex.layer], model)
    result = reference_agreeing_with_straightforward("token_to_latent", args)

    grads, acts = result
    assert grads.shape == (*tokens.shape, len(acts.sparse[0]))
    m64, sae = world64.model, world64.saes[ex.layer]
    outputs = acts.sparse[1]

    def latents(scales: Tensor) -> Tensor:
        resid = m64(m64(tokens, stop_at_layer=0) * scales[..., None], start_at_layer=0, stop_at_layer=ex.layer)
        return encode(sae, resid)[outputs.unbind(-1)]

    entries = entries_to_check(grads, active_with_margin(acts)[None, None].expand_as(grads))
    scales = torch.ones(tokens.shape, dtype=torch.float64)
    oracle = [central_difference(latents, scales, (b, s), (j,)) for b, s, j in entries]
    assert_matches_oracle(grads, oracle, entries)


@pytest.mark.latent_to_logit
def test_latent_to_logit_reference(tiny_world: World, world64: World) -> None:
    ex = tiny_world.exercises.latent_to_logit
    model = tiny_world.model
    tokens = model.to_tokens(ex.prompt)
    args = (tokens, tiny_world.saes[ex.layer], model, ex.k)
    result = reference_agreeing_with_straightforward("latent_to_logit", args)

    grads, logits, _, token_ids, acts = result
    assert grads.shape == (ex.k, len(acts.sparse[0])) and len(token_ids) == ex.k
    assert token_ids == logits.topk(ex.k).indices.tolist()
    m64, sae = world64.model, world64.saes[ex.layer]
    _, indices, shape = acts.sparse

    def top_logits(values: Tensor) -> Tensor:
        return m64(decode(sae, dense_of(values, indices, shape), m64.cfg.d_head), start_at_layer=ex.layer)[0, -1, token_ids]

    entries = entries_to_check(grads)
    values = acts.sparse[0].detach().to(torch.float64)
    oracle = [central_difference(top_logits, values, (col,), (row,)) for row, col in entries]
    assert_matches_oracle(grads, oracle, entries)


@pytest.mark.latent_to_logit
def test_latent_to_logit_reference_with_no_logit_asked_for(tiny_world: World) -> None:
    """k = 0: no row and a column per active latent, with the same logits as the straightforward formulation."""
    ex, model = tiny_world.exercises.latent_to_logit, tiny_world.model
    grads, _, _, token_ids, acts = reference_agreeing_with_straightforward("latent_to_logit", (model.to_tokens(ex.prompt), tiny_world.saes[ex.layer], model, 0))
    assert grads.shape == (0, len(acts.sparse[0])) and token_ids == []


@pytest.mark.attention
def test_attention_reference(tiny_world: World, world64: World) -> None:
    ex = tiny_world.exercises.attention
    model = tiny_world.model
    tokens = ex.repeated_tokens(model)
    args = (tokens, tiny_world.attn_saes[ex.layer_from], tiny_world.attn_saes[ex.layer_to], model)
    grads, values, indices, shape, next_recon = latent_pair_reference("attention", args)
    m64, sae_from, sae_to = world64.model, world64.attn_saes[ex.layer_from], world64.attn_saes[ex.layer_to]
    rows = next_recon.sparse[1]
    resid_pre_name = get_act_name("resid_pre", ex.layer_from)
    with torch.no_grad():
        _, cache = m64.run_with_cache(tokens, names_filter=resid_pre_name)

    def later_latents(values: Tensor) -> Tensor:
        z_recon = decode(sae_from, dense_of(values, indices, shape), m64.cfg.d_head)
        z_later: list[Tensor] = []
        m64.run_with_hooks(
            cache[resid_pre_name],
            start_at_layer=ex.layer_from,
            stop_at_layer=ex.layer_to + 1,
            fwd_hooks=[
                (get_act_name("z", _get_hook_layer(sae_from)), lambda z, hook: z_recon),
                (get_act_name("z", _get_hook_layer(sae_to)), lambda z, hook: z_later.append(z)),
            ],
        )
        return encode(sae_to, z_later[0])[rows.unbind(-1)]

    assert_latent_pair_matches_oracle(grads, later_latents, values, next_recon)


@pytest.mark.latent_to_latent
@pytest.mark.latent_to_logit
def test_chunked_jacobians_are_the_same(tiny_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a memory bound small enough to split every Jacobian into chunks (as a long prompt would),
    forward mode (latent-to-latent) and reverse mode (top-k logits) give the same results."""
    import solutions.jacobian

    model, ex = tiny_world.model, tiny_world.exercises
    l2l, l2g = ex.latent_to_latent, ex.latent_to_logit
    l2l_args = (model.to_tokens(l2l.prompt), tiny_world.saes[l2l.layer_from], tiny_world.saes[l2l.layer_to], model)
    l2g_args = (model.to_tokens(l2g.prompt), tiny_world.saes[l2g.layer], model, l2g.k)
    with torch.enable_grad():
        whole = (solutions.latent_to_latent_gradients(*l2l_args), solutions.latent_to_logit_gradients(*l2g_args))
        floats_per_row = 11 * max(model.cfg.d_mlp, 4 * model.cfg.d_model) * model.cfg.n_layers
        monkeypatch.setattr(solutions.jacobian, "_MAX_FLOATS_IN_FLIGHT", 3 * floats_per_row)  # chunks of ~3 rows
        assert solutions.jacobian.jacobian_chunk_size(100, 11, model) is not None
        assert solutions.jacobian.positionwise_chunk_size(100, 11, model) < 100  # forward mode row by row, too
        chunked = (solutions.latent_to_latent_gradients(*l2l_args), solutions.latent_to_logit_gradients(*l2g_args))
    assert_same_results(chunked, whole)


@pytest.mark.latent_to_latent
@pytest.mark.token_to_latent
@pytest.mark.attention
def test_row_by_row_forward_mode_equals_the_plain_one(tiny_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The forward-mode Jacobians written out row by row (solutions/forward_mode.py, which the tiny and
    toy worlds' plain blocks use) equal the plain torch.func ones that any other model falls back to."""
    import solutions.forward_mode

    model, ex = tiny_world.model, tiny_world.exercises
    l2l, ind = ex.latent_to_latent, ex.attention
    saes = (tiny_world.saes[l2l.layer_from], tiny_world.saes[l2l.layer_to], tiny_world.attn_saes[ind.layer_from])
    assert solutions.forward_mode.supports_positionwise(model, saes)

    def all_three() -> tuple:
        return (
            solutions.latent_to_latent_gradients(model.to_tokens(l2l.prompt), tiny_world.saes[l2l.layer_from], tiny_world.saes[l2l.layer_to], model),
            solutions.token_to_latent_gradients(model.to_tokens(ex.token_to_latent.prompt), tiny_world.saes[ex.token_to_latent.layer], model),
            solutions.latent_to_latent_gradients_attn(ind.repeated_tokens(model), tiny_world.attn_saes[ind.layer_from], tiny_world.attn_saes[ind.layer_to], model),
        )

    with torch.enable_grad():
        row_by_row = all_three()
        monkeypatch.setattr(solutions.forward_mode, "supports_positionwise", lambda model, saes: False)
        plain = all_three()
    assert_same_results(row_by_row, plain)


@pytest.mark.token_to_latent
@pytest.mark.latent_to_latent
@pytest.mark.latent_to_logit
def test_references_agree_with_the_straightforward_formulation_at_every_layer(tiny_world: World) -> None:
    """Every layer and pair of layers the hidden tests may draw, the edge cases included: an SAE at
    layer 0's resid_pre (no block between the embeddings and it) and adjacent layers."""
    model = tiny_world.model
    tokens = model.to_tokens(tiny_world.exercises.token_to_latent.prompt)
    layers = sorted(tiny_world.saes)
    with torch.enable_grad():
        for layer in layers:
            sae = tiny_world.saes[layer]
            assert_same_results(solutions.token_to_latent_gradients(tokens, sae, model), straightforward.token_to_latent_gradients(tokens, sae, model))
            assert_same_results(
                solutions.latent_to_logit_gradients(tokens, sae, model, 5), straightforward.latent_to_logit_gradients(tokens, sae, model, 5)
            )
        for layer_from, layer_to in zip(layers, layers[1:]):
            args = (tokens, tiny_world.saes[layer_from], tiny_world.saes[layer_to], model)
            assert_same_results(solutions.latent_to_latent_gradients(*args), straightforward.latent_to_latent_gradients(*args))


@pytest.mark.latent_circuit
def test_latent_circuit_reference(tiny_world: World, world64: World) -> None:
    """The reference circuit equals the one pruned from every edge computed up front (one jacrev per pair of
    layers); and its latent edges are gradient x activation as sae_lens's own splicing sees them: the SAEs
    spliced in with their error term, one latent nudged by a hook, in float64 (central differences)."""
    ex = tiny_world.exercises.latent_circuit
    model = tiny_world.model
    tokens = model.to_tokens(ex.prompt)
    with torch.no_grad():
        target = int(model(tokens)[0, -1].argmax())
    args = (tokens, tiny_world.saes, model, ex.layers, target, ex.k)
    with torch.enable_grad():
        circuit = solutions.latent_circuit(*args)
        dense = straightforward.latent_circuit(*args)
    assert [n.key for n in circuit.nodes] == [n.key for n in dense.nodes]
    assert [(e.source, e.target) for e in circuit.edges] == [(e.source, e.target) for e in dense.edges]
    for quantity, got, want in (
        ("contribution", [n.contribution for n in circuit.nodes], [n.contribution for n in dense.nodes]),
        ("weight", [e.weight for e in circuit.edges], [e.weight for e in dense.edges]),
    ):
        assert_same_results(torch.tensor(got), torch.tensor(want), quantity)
    assert len(circuit.latents()) == ex.k * len(ex.layers) and circuit.edges

    m64, saes64 = world64.model, world64.saes
    nodes = {n.key: n for n in circuit.nodes}

    def spliced(nudged: tuple[int, int, int], delta: float, read: tuple[int, int, int] | None) -> float:
        """With the circuit's SAEs spliced in (error term kept), latent `nudged` (layer, position, latent) moved by
        `delta`: latent `read`'s activation, or the target logit when `read` is None."""
        layer, position, latent = nudged
        seen: dict[str, Tensor] = {}

        def nudge(acts: Tensor, hook: object) -> Tensor:
            acts = acts.clone()
            acts[0, position, latent] += delta
            return acts

        hooks = [(f"{saes64[layer].cfg.metadata.hook_name}.hook_sae_acts_post", nudge)]
        if read is not None:
            hooks.append((f"{saes64[read[0]].cfg.metadata.hook_name}.hook_sae_acts_post", lambda acts, hook: seen.update(acts=acts)))
        with torch.no_grad(), m64.saes(saes=[saes64[layer] for layer in ex.layers], use_error_term=True):
            logits = m64.run_with_hooks(tokens, fwd_hooks=hooks)
        return float(logits[0, -1, target]) if read is None else float(seen["acts"][0, read[1], read[2]])

    checked = 0
    for edge in sorted(circuit.edges, key=lambda e: -abs(e.weight)):
        if edge.source[0] != "latent":
            continue
        source = nodes[edge.source]
        nudged = (source.layer, source.position, source.index)
        read = None if edge.target[0] == "logit" else (edge.target[1], edge.target[2], edge.target[3])
        derivative = (spliced(nudged, STEP, read) - spliced(nudged, -STEP, read)) / (2 * STEP)
        torch.testing.assert_close(edge.weight, derivative * source.activation, rtol=1e-3, atol=1e-6, msg=f"edge {edge}")
        checked += 1
        if checked == N_ENTRIES:
            break
    assert checked == N_ENTRIES
