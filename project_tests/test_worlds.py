"""Loading worlds: GPT-2 from a fake local Hugging Face cache, GPT-2 with nothing to load, the random world, the tokenizer.

Nothing here touches the network: every test runs with `internet_reachable` answering False and with
sockets to anywhere but this machine refused, so a test that would download fails instead of hanging.

The `gpt2` world is loaded through the learner's own path (`load_world("gpt2")`, i.e.
`gpt2_world.load_gpt2_world`, `HookedSAETransformer.from_pretrained("gpt2-small")` and
`SAE.from_pretrained(...)`) from a cache that `fake_hf_cache.py` writes in the real file formats, at
tiny sizes. huggingface_hub reads HF_HOME, HF_HUB_CACHE and HF_HUB_OFFLINE once, at import, so the
fixtures set both the environment variables and the `huggingface_hub.constants` read from them.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hf_server import serve_hub  # project_tests/hf_server.py
from transformer_lens.utilities import get_act_name

import tests as checks
from part_utils import gpt2_world, network, toy_world, worlds
from part_utils.gpt2_world import GPT2_EXERCISES
from part_utils.random_world import CALIBRATION_TEXTS, TINY_SHAPE, WorldShape, build_random_world
from part_utils.tokenizer import GPT2_VOCAB_SIZE, gpt2_tokenizer
from part_utils.world_types import World, WorldUnavailable
from part_utils.worlds import load_world
from tests._exercise import world_settings

from fake_hf_cache import attention_d_sae, build_fake_hf_cache  # project_tests/fake_hf_cache.py

pytestmark = pytest.mark.worlds

# The real probe: the autouse fixture below replaces `network.internet_reachable` in every test.
REAL_PROBE = network.internet_reachable
ROOT = Path(__file__).resolve().parent.parent

# The fake GPT-2: as many layers as the real one (the exercises use layers 0, 3, 9 and 4, 5), tiny widths.
FAKE_N_LAYERS, FAKE_D_MODEL, FAKE_N_HEADS, FAKE_D_SAE = 12, 32, 2, 64
# Asking for GPT-2 with no network and nothing cached must fail at once, not after the clients' retries.
MAX_FAILURE_SECONDS = 10.0


def _is_local(address: object) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if not isinstance(host, str):  # a Unix socket's path as bytes, say
        return True
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return not isinstance(address, tuple)  # a Unix socket's path


def _no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Say the Hub cannot be reached, and refuse any connection off this machine should something try.

    Also clears the variables that choose a world, so that each test gets the world it names.
    Returns the list of the addresses refused, for the caller to check that nothing tried.
    """
    monkeypatch.delenv(worlds.WORLD_ENV, raising=False)
    monkeypatch.delenv(worlds.GRADING_WORLD_ENV, raising=False)
    monkeypatch.setattr(network, "internet_reachable", lambda *args, **kwargs: False)
    refused: list[object] = []
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: object) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
            refused.append(address)
            raise OSError(f"test_worlds: network access refused ({address!r})")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return refused


def _use_hf_home(monkeypatch: pytest.MonkeyPatch, hf_home: Path, offline: bool = True) -> None:
    """Point Hugging Face's clients at `hf_home`, in offline mode unless told otherwise."""
    from huggingface_hub import constants

    hub = hf_home / "hub"
    hub.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(constants, "HF_HOME", str(hf_home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(constants, "HF_ASSETS_CACHE", str(hf_home / "assets"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(hf_home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(hf_home / "stored_tokens"))
    from transformer_lens.utilities import hf_utils

    monkeypatch.setattr(hf_utils, "CACHE_DIR", str(hub))
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    refused = _no_network(monkeypatch)
    yield
    assert not refused, f"something tried to reach the network: {refused}"


@pytest.fixture(scope="module")
def fake_hf_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    hf_home = tmp_path_factory.mktemp("fake_hf_home")
    build_fake_hf_cache(hf_home, n_layers=FAKE_N_LAYERS, d_model=FAKE_D_MODEL, n_heads=FAKE_N_HEADS, d_sae=FAKE_D_SAE)
    return hf_home


@pytest.fixture(scope="module")
def gpt2_from_fake_cache(fake_hf_home: Path) -> Iterator[tuple[World, tuple[int, ...], tuple[int, ...], float]]:
    """The gpt2 world, loaded by `load_world("gpt2")` from the fake cache; with the SAE layers loaded by then, and the time taken."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        refused = _no_network(monkeypatch)
        _use_hf_home(monkeypatch, fake_hf_home)
        start = time.perf_counter()
        world = load_world("gpt2", device="cpu")
        seconds = time.perf_counter() - start
        yield world, world.saes.loaded_layers, world.attn_saes.loaded_layers, seconds
        assert not refused, f"loading GPT-2 from the cache tried to reach the network: {refused}"


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, fake_hf_home: Path) -> Path:
    """Hugging Face's clients pointed at the fake cache, offline, for one test (SAEs loaded late need it)."""
    _use_hf_home(monkeypatch, fake_hf_home)
    return fake_hf_home


# ---------------------------------------------------------------------------------------------------
# GPT-2 from the fake cache


def test_fake_cache_is_complete(fake_hub: Path) -> None:
    assert gpt2_world.missing_from_cache() == []
    assert gpt2_world.why_unavailable() is None


def test_gpt2_world_loads_from_the_cache_with_the_fake_shapes(gpt2_from_fake_cache, figures) -> None:
    world, _, _, seconds = gpt2_from_fake_cache
    figures.add("worlds", f"gpt2 world from a fake {FAKE_N_LAYERS}-layer cache: loaded in {seconds:.2f} s")
    assert world.name == "gpt2" and world.exercises is GPT2_EXERCISES
    assert "gpt2-small-res-jb" in world.description and "gpt2-small-hook-z-kk" in world.description
    cfg = world.model.cfg
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_vocab) == (FAKE_N_LAYERS, FAKE_D_MODEL, FAKE_N_HEADS, GPT2_VOCAB_SIZE)
    assert world.model.to_tokens("hi there").tolist() == [[50256, 5303, 612]]
    assert list(world.saes) == list(world.attn_saes) == list(range(FAKE_N_LAYERS))
    for layer in GPT2_EXERCISES.residual_layers:
        sae = world.saes[layer]
        assert (sae.cfg.d_in, sae.cfg.d_sae) == (FAKE_D_MODEL, FAKE_D_SAE)
        assert sae.cfg.metadata.hook_name == get_act_name("resid_pre", layer)
        assert sae.W_dec.shape == (FAKE_D_SAE, FAKE_D_MODEL)
    for layer in GPT2_EXERCISES.attention_layers:
        sae = world.attn_saes[layer]
        assert (sae.cfg.d_in, sae.cfg.d_sae) == (FAKE_D_MODEL, attention_d_sae(layer, FAKE_D_SAE))
        assert sae.cfg.metadata.hook_name == get_act_name("z", layer)
        assert sae.cfg.reshape_activations == "hook_z"
    assert worlds.current_world() is world
    assert world_settings(world.model) is GPT2_EXERCISES
    # The real release's attention SAEs at layers 4 and 5 differ in size; so do the fake ones.
    assert len({world.attn_saes[layer].cfg.d_sae for layer in GPT2_EXERCISES.attention_layers}) == 2


def test_gpt2_loaded_by_hand_gets_gpt2s_settings(fake_hub: Path) -> None:
    """A GPT-2 small the learner loads without load_world() is recognised by its config, not by a guess."""
    from sae_lens import HookedSAETransformer

    model = HookedSAETransformer.from_pretrained(gpt2_world.MODEL_NAME, device="cpu")
    assert world_settings(model) is GPT2_EXERCISES
    model.cfg.model_name = "gpt2-medium"
    with pytest.raises(LookupError, match="load_world"):
        world_settings(model)


def test_gpt2_world_loads_only_the_exercises_saes(gpt2_from_fake_cache) -> None:
    _, residual_loaded, attention_loaded, _ = gpt2_from_fake_cache
    assert residual_loaded == GPT2_EXERCISES.residual_layers == (0, 3, 9)
    assert attention_loaded == GPT2_EXERCISES.attention_layers == (4, 5)


def test_gpt2_world_loads_other_saes_when_asked(gpt2_from_fake_cache, fake_hub) -> None:
    world = gpt2_from_fake_cache[0]
    sae = world.saes[7]
    assert sae.cfg.metadata.hook_name == "blocks.7.hook_resid_pre"
    assert 7 in world.saes.loaded_layers and 7 not in world.attn_saes.loaded_layers
    with pytest.raises(KeyError, match="layer 12"):
        world.saes[12]


def test_gpt2_sae_missing_from_the_cache_is_unavailable(gpt2_from_fake_cache, fake_hf_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An SAE loaded late, offline, and not cached: WorldUnavailable naming the toy world, not a hub traceback."""
    hf_home = tmp_path / "model_only_hf_home"
    (hf_home / "hub").mkdir(parents=True)
    (hf_home / "hub" / "models--gpt2").symlink_to(fake_hf_home / "hub" / "models--gpt2")
    _use_hf_home(monkeypatch, hf_home)
    assert gpt2_world.why_unavailable().startswith("HF_HUB_OFFLINE is set and GPT-2 or its SAEs are not in the local")
    world = gpt2_from_fake_cache[0]
    with pytest.raises(WorldUnavailable, match=r"blocks\.11\.hook_resid_pre.*world='toy'"):
        world.saes[11]
    assert 11 not in world.saes.loaded_layers


@pytest.mark.slow  # GPT-2's twelve layers, if at tiny widths
@pytest.mark.parametrize("exercise", [e for e in checks.EXERCISES if e.sae_map is not None], ids=lambda e: e.name)
def test_smoke_learner_checks_pass_with_the_solutions_on_gpt2(gpt2_from_fake_cache, exercise: checks.Exercise) -> None:
    exercise.run_check(exercise.reference, gpt2_from_fake_cache[0])


def test_auto_picks_gpt2_when_it_is_cached(fake_hub: Path, monkeypatch: pytest.MonkeyPatch, tiny_world: World) -> None:
    stand_in = World("gpt2", tiny_world.model, tiny_world.saes, tiny_world.attn_saes, tiny_world.exercises, "a stand-in")
    monkeypatch.setattr(gpt2_world, "load_gpt2_world", lambda device, probed=None: stand_in)
    assert load_world("auto", device="cpu", verbose=False) is stand_in
    assert worlds.current_world() is stand_in


def test_cached_gpt2_loads_without_offline_mode_when_the_hub_is_unreachable(fake_hf_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_HUB_OFFLINE unset, no network: the cache is enough, and loading runs in offline mode."""
    _use_hf_home(monkeypatch, fake_hf_home, offline=False)
    assert gpt2_world.why_unavailable() is None
    from huggingface_hub import constants

    seen = []

    def from_pretrained(*args, **kwargs):  # stands in for HookedSAETransformer's
        seen.append(constants.HF_HUB_OFFLINE)
        raise _Stop

    monkeypatch.setattr(gpt2_world.HookedSAETransformer, "from_pretrained", from_pretrained)
    with pytest.raises(_Stop):
        gpt2_world.load_gpt2_world("cpu")
    assert seen == [True] and constants.HF_HUB_OFFLINE is False


class _Stop(Exception):
    """Stops loading once it has shown what it was to show."""


# ---------------------------------------------------------------------------------------------------
# GPT-2 with nothing to load


@pytest.mark.parametrize("offline", [True, False], ids=["HF_HUB_OFFLINE", "hub-unreachable"])
def test_gpt2_fails_fast_naming_the_toy_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: bool, figures) -> None:
    _use_hf_home(monkeypatch, tmp_path / "empty_hf_home", offline=offline)
    start = time.perf_counter()
    with pytest.raises(WorldUnavailable, match="toy") as raised:
        load_world("gpt2", device="cpu")
    seconds = time.perf_counter() - start
    figures.add("worlds", f"gpt2 with an empty cache ({'offline' if offline else 'hub unreachable'}): WorldUnavailable in {seconds:.2f} s")
    assert seconds < MAX_FAILURE_SECONDS
    assert "LATENT_GRADIENTS_WORLD=toy" in str(raised.value)
    assert ("HF_HUB_OFFLINE" if offline else "cannot be reached") in str(raised.value)


def test_auto_says_it_falls_back_to_the_toy_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, tiny_world: World) -> None:
    """The choice `auto` makes and what it prints, whether or not the toy world's data is built (a stand-in loads here)."""
    _use_hf_home(monkeypatch, tmp_path / "empty_hf_home")
    stand_in = World("toy", tiny_world.model, tiny_world.saes, tiny_world.attn_saes, tiny_world.exercises, "a stand-in")
    monkeypatch.setattr(toy_world, "load_toy_world", lambda device: stand_in)
    assert load_world("auto", device="cpu") is stand_in
    printed = capsys.readouterr().out
    assert "GPT-2 is not available (HF_HUB_OFFLINE is set" in printed and "offline toy world" in printed
    assert "World: toy (a stand-in)" in printed


def test_auto_falls_back_to_the_toy_world_visibly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from part_utils import toy_world

    files = [toy_world.DATA_DIR / name for name in (toy_world.MODEL_FILE, toy_world.SAES_FILE, toy_world.WORLD_FILE)]
    if not all(path.exists() for path in files):
        pytest.skip(f"the toy world's data is not built yet ({toy_world.DATA_DIR} lacks some of {[p.name for p in files]})")
    for offline in (True, False):
        _use_hf_home(monkeypatch, tmp_path / "empty_hf_home", offline=offline)
        start = time.perf_counter()
        world = load_world("auto", device="cpu")
        assert time.perf_counter() - start < MAX_FAILURE_SECONDS
        printed = capsys.readouterr().out
        assert world.name == "toy"
        assert "GPT-2 is not available" in printed and "offline toy world" in printed
        assert "World: toy" in printed


# ---------------------------------------------------------------------------------------------------
# The random world


# Two layers and narrow: building three of these takes about a second.
SMALL_RANDOM_SHAPE = WorldShape(n_layers=2, d_model=16, n_heads=2, d_mlp=32, d_sae=32, l0=4, exercises=TINY_SHAPE.exercises)


def _state(world: World, layers: list[int]) -> dict[str, torch.Tensor]:
    """The world's weights by name, loading the SAEs of `layers` in that order."""
    tensors = {f"model.{k}": v for k, v in world.model.state_dict().items()}
    for layer in layers:
        tensors |= {f"saes.{layer}.{k}": v for k, v in world.saes[layer].state_dict().items()}
        tensors |= {f"attn_saes.{layer}.{k}": v for k, v in world.attn_saes[layer].state_dict().items()}
    return tensors


@pytest.mark.slow  # builds and calibrates two random worlds
def test_random_world_is_deterministic() -> None:
    """Same seed, same weights, whichever order the SAEs are loaded in; another seed, other weights."""
    shape = SMALL_RANDOM_SHAPE
    layers = list(range(shape.n_layers))
    first, again, other = (build_random_world(shape, seed=seed) for seed in (0, 0, 1))
    first_state = _state(first, layers)
    again_state = _state(again, layers[::-1])
    other_state = _state(other, layers)
    assert first_state.keys() == again_state.keys() == other_state.keys()
    assert all(torch.equal(first_state[key], again_state[key]) for key in first_state)
    assert not torch.equal(first_state["model.embed.W_E"], other_state["model.embed.W_E"])
    assert not torch.equal(first_state["saes.0.W_dec"], other_state["saes.0.W_dec"])


@pytest.mark.slow  # encodes calibration text with every SAE of the tiny world
@torch.no_grad()
def test_random_world_l0_is_near_its_target(tiny_world: World, figures) -> None:
    """About `l0` latents fire per token, on the calibration texts and on a sentence the SAEs never saw."""
    target = TINY_SHAPE.l0
    texts = [*CALIBRATION_TEXTS, "A quiet river runs past the old mill, where children feed the ducks every Sunday."]
    hooks = {"residual": (tiny_world.saes, "resid_pre"), "attention": (tiny_world.attn_saes, "z")}
    names = [get_act_name(hook, layer) for _, hook in hooks.values() for layer in range(TINY_SHAPE.n_layers)]
    # One text at a time: a batch would pad, and padding positions are no text's tokens.
    caches = [tiny_world.model.run_with_cache(text, names_filter=names)[1] for text in texts]
    for kind, (saes, hook) in hooks.items():
        for layer in range(TINY_SHAPE.n_layers):
            name = get_act_name(hook, layer)
            # BOS aside: every text's first position is the same, and far from the others.
            active = torch.cat([(saes[layer].encode(cache[name])[0, 1:] > 0).sum(-1) for cache in caches])
            l0 = active.float().mean().item()
            figures.add("worlds", f"random world seed 0, {kind} SAE layer {layer}: L0 {l0:.1f} (target {target})")
            assert target / 2 <= l0 <= target * 2, f"{kind} SAE layer {layer}: L0 {l0:.1f}, target {target}"


# ---------------------------------------------------------------------------------------------------
# The tokenizer


def test_tokenizer_is_gpt2s() -> None:
    tokenizer = gpt2_tokenizer()
    assert len(tokenizer) == GPT2_VOCAB_SIZE
    assert tokenizer.bos_token_id == tokenizer.eos_token_id == 50256
    assert tokenizer("hi there")["input_ids"] == [5303, 612]
    assert tokenizer.tokenize(" Eiffel") == ["ĠE", "iff", "el"]
    assert tokenizer("The Eiffel tower is in Paris")["input_ids"] == [464, 412, 733, 417, 10580, 318, 287, 6342]
    assert tokenizer.decode([464, 412, 733, 417, 10580, 318, 287, 6342]) == "The Eiffel tower is in Paris"


# ---------------------------------------------------------------------------------------------------
# The online path, without the internet: the probe, and downloads from a Hub on loopback


@pytest.fixture
def loopback_listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections (and says nothing)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def test_probe_honours_hf_endpoint(monkeypatch: pytest.MonkeyPatch, loopback_listener: int) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{loopback_listener}")
    assert network.hub_address() == ("127.0.0.1", loopback_listener)
    assert REAL_PROBE(timeout_s=2.0)
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    assert not REAL_PROBE(timeout_s=2.0)


def test_probe_goes_through_the_https_proxy(monkeypatch: pytest.MonkeyPatch, loopback_listener: int) -> None:
    """Behind a proxy, the Hub is reachable when the proxy is: the probe connects to the proxy, as the client would."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "https://huggingface.co")
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{loopback_listener}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert network.hub_address() == ("127.0.0.1", loopback_listener)
    assert REAL_PROBE(timeout_s=2.0)


def test_probe_bounds_its_total_time_dns_included(monkeypatch: pytest.MonkeyPatch, figures) -> None:
    """A resolver that hangs (a broken network's DNS) does not hold the learner up past the probe's budget."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "https://huggingface.co")
    def hanging_resolver(*args: object, **kwargs: object) -> list:
        time.sleep(30)
        raise socket.gaierror("the resolver gave up")

    monkeypatch.setattr(socket, "getaddrinfo", hanging_resolver)
    start = time.perf_counter()
    assert not REAL_PROBE(timeout_s=0.5)
    seconds = time.perf_counter() - start
    figures.add("worlds", f"probe with a resolver that hangs: gave up after {seconds:.2f} s (budget 0.5 s)")
    assert seconds < 2.0


def test_network_is_probed_once_per_load_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _use_hf_home(monkeypatch, tmp_path / "empty_hf_home", offline=False)
    probes: list[object] = []
    monkeypatch.setattr(network, "internet_reachable", lambda *args, **kwargs: probes.append(args) or False)
    world = load_world("auto", device="cpu", verbose=False)
    assert world.name == "toy" and len(probes) == 1


def test_auto_falls_back_visibly_when_a_download_breaks(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(gpt2_world, "availability", lambda: (None, False))

    def broken(device: object, probed: object = None) -> World:
        raise gpt2_world._unavailable("the SAE gpt2-small-res-jb/blocks.0.hook_resid_pre could not be downloaded (peer closed connection)")

    monkeypatch.setattr(gpt2_world, "load_gpt2_world", broken)
    world = load_world("auto", device="cpu")
    printed = capsys.readouterr().out
    assert world.name == "toy"
    assert "could not be downloaded" in printed and "offline toy world instead" in printed


@pytest.mark.slow  # the Hub client's own retries before it gives up
def test_a_download_cut_partway_gives_the_course_message(fake_hf_home: Path, tmp_path: Path, figures) -> None:
    """For real, without the internet: a Hub on loopback (HF_ENDPOINT) serves the fake release and cuts one
    transfer halfway. huggingface_hub retries, then raises its HTTP client's error (httpx2's); the learner
    gets the course's message naming the toy world, not a traceback. An intact file downloads fine."""
    code = (
        "import torch\n"
        "from part_utils import gpt2_world\n"
        "from part_utils.worlds import WorldUnavailable\n"
        "sae = gpt2_world._load_sae(gpt2_world.RESIDUAL_RELEASE, gpt2_world.residual_sae_id(3), torch.device('cpu'), False)\n"
        "print('DOWNLOADED layer 3, d_sae', sae.cfg.d_sae)\n"
        "try:\n"
        "    gpt2_world._load_sae(gpt2_world.RESIDUAL_RELEASE, gpt2_world.residual_sae_id(0), torch.device('cpu'), False)\n"
        "except WorldUnavailable as error:\n"
        "    print('UNAVAILABLE:', error)\n"
    )
    hub = fake_hf_home / "hub"
    # Only layer 0's weights are cut; layer 3's are served whole.
    with serve_hub(hub, break_files=frozenset({"sae_weights.safetensors"}), break_under="blocks.0.") as endpoint:
        env = {
            **os.environ,
            "HF_ENDPOINT": endpoint,
            "HF_HOME": str(tmp_path / "hf_home"),
            "HF_HUB_DISABLE_XET": "1",
            "PYTHONPATH": str(ROOT),
            "NO_PROXY": "127.0.0.1,localhost",
        }
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
            env.pop(name, None)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=False)
        seconds = time.perf_counter() - start
    figures.add("worlds", f"download cut partway (loopback Hub): the course's message after {seconds:.1f} s, retries included")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert f"DOWNLOADED layer 3, d_sae {FAKE_D_SAE}" in result.stdout
    assert "UNAVAILABLE: The gpt2 world cannot be loaded" in result.stdout and "toy" in result.stdout, result.stdout
    assert "Traceback" not in result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------------
# make verify-gpt2: fails fast offline; against the fake cache, runs up to the comparison


def _verify_gpt2(env_updates: dict[str, str], timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LATENT_GRADIENTS_DEVICE": "cpu", **env_updates}
    for name in ("HF_HUB_CACHE", "HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        env.pop(name, None)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "verify_gpt2.py")], env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return result, time.perf_counter() - start


@pytest.mark.parametrize("offline", [True, False], ids=["HF_HUB_OFFLINE", "hub_unreachable"])
def test_verify_gpt2_fails_within_seconds_offline(tmp_path: Path, offline: bool, figures) -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    env = {"HF_HOME": str(tmp_path / "empty"), "HF_ENDPOINT": f"http://127.0.0.1:{port}"}
    env.update({"HF_HUB_OFFLINE": "1"} if offline else {"HF_HUB_OFFLINE": "0"})
    result, seconds = _verify_gpt2(env, timeout=60)
    figures.add("worlds", f"make verify-gpt2 with no network ({'offline mode' if offline else 'hub unreachable'}): failed after {seconds:.1f} s")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "verify-gpt2 needs GPT-2 from Hugging Face" in result.stdout and "Traceback" not in result.stderr
    assert seconds < MAX_FAILURE_SECONDS


@pytest.mark.slow  # a fresh process that imports sae_lens and loads the fake GPT-2
def test_verify_gpt2_runs_up_to_the_comparison_on_the_fake_cache(fake_hf_home: Path) -> None:
    """The fake GPT-2 is random and tiny, so its figures differ: every quoted figure is measured and compared."""
    result, _ = _verify_gpt2({"HF_HOME": str(fake_hf_home), "HF_HUB_OFFLINE": "1"}, timeout=900)
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    for figure in ("later latents active, true run", "F0.16911", "token ' E' -> F3.15266", "' Paris' rank, clean model",
                   "layer-9 SAE spliced in", "largest gradient to ' Paris'", "F9.5879", "induction: later latents active",
                   "layer-5 induction latents", "23954"):
        assert figure in result.stdout, figure
    assert "DIFFERS" in result.stdout and "figures as quoted or informational" in result.stdout
