"""The `gpt2` world: GPT-2 small and its SAEs (`gpt2-small-res-jb`, `gpt2-small-hook-z-kk`) from Hugging Face.

`why_unavailable()` says, quickly and without downloading anything, whether this world can be loaded
here: it can when huggingface.co answers, or when the files the exercises need are already in the
local Hugging Face cache (as after one online run; set `HF_HUB_OFFLINE=1` to use only the cache).
`load_gpt2_world(device)` loads the model, and the SAEs of the layers the exercises use; the SAEs of
the other layers load the first time they are asked for (`world.saes[7]`).

Hugging Face's clients retry and wait on a network that is down, so we ask first: with no network and
no cached files, asking for this world fails at once with `WorldUnavailable`, naming the offline toy
world instead. With no network but the files cached, we load in offline mode, from the cache only.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

import torch
from sae_lens import SAE, HookedSAETransformer
from transformer_lens.utilities import get_act_name

from part_utils import network
from part_utils.world_types import (
    AttentionSettings,
    ExerciseSettings,
    LatentToLatentSettings,
    LatentToLogitSettings,
    LazySAEs,
    TokenToLatentSettings,
    World,
    WorldUnavailable,
)

GPT2_EXERCISES = ExerciseSettings(
    latent_to_latent=LatentToLatentSettings(layer_from=0, layer_to=3, prompt="The Eiffel tower is in Paris"),
    token_to_latent=TokenToLatentSettings(layer=3, prompt="The Eiffel tower is in Paris"),
    # The contrast " London" is GPT-2's second prediction on the prompt in the original research.
    latent_to_logit=LatentToLogitSettings(
        layer=9,
        prompt="The Eiffel tower is in the city of",
        answer=" Paris",
        k=25,
        contrast=" London",
        reference_prompts=(
            "The Colosseum is in the city of",
            "Big Ben is in the city of",
            "The Brandenburg Gate is in the city of",
            "The Sagrada Familia is in the city of",
            "The Rijksmuseum is in the city of",
            "The Kremlin is in the city of",
            "The Sydney Opera House is in the city of",
            "The Acropolis is in the city of",
        ),
    ),
    attention=AttentionSettings(
        layer_from=4,
        layer_to=5,
        seq_len=10,
        token_pool=None,
        prev_token_heads=((4, 11),),
        induction_heads=((5, 1), (5, 5), (5, 8)),
    ),
)

# The latents the original GPT-2 analysis singled out (the notebook's text describes them).
GPT2_FACTS = {
    "world": {
        "observations": [
            "GPT-2 small, as OpenAI trained it on web text, with the SAEs of the original research (the code that loads "
            "them is in the notes above the loading cell). Its figures in this notebook's notes come from that research, "
            "not from this run: yours may differ in the last digits, and the seeded induction sequence differs."
        ]
    },
    "latent_to_latent": {
        "dashboards": [
            ["blocks.0.hook_resid_pre", 9449],
            ["blocks.3.hook_resid_pre", 385],
            ["blocks.0.hook_resid_pre", 16911],
            ["blocks.3.hook_resid_pre", 15266],
        ]
    },
    "latent_to_logit": {"dashboards": [["blocks.9.hook_resid_pre", 22250], ["blocks.9.hook_resid_pre", 5879]]},
    "attention": {
        "dashboards": [["blocks.5.hook_z", 35425], ["blocks.5.hook_z", 36126], ["blocks.4.hook_z", 22975], ["blocks.4.hook_z", 21020], ["blocks.4.hook_z", 23954]]
    },
}

MODEL_NAME = "gpt2-small"
MODEL_REPO = "gpt2"  # the Hugging Face repo TransformerLens loads "gpt2-small" from
RESIDUAL_RELEASE = "gpt2-small-res-jb"
RESIDUAL_D_SAE = 24576  # latents per SAE of that release
ATTENTION_RELEASE = "gpt2-small-hook-z-kk"
DESCRIPTION = "GPT-2 small with the gpt2-small-res-jb and gpt2-small-hook-z-kk SAEs, from Hugging Face"
USE_TOY_INSTEAD = "run with world='toy' (or LATENT_GRADIENTS_WORLD=toy) for the offline toy world"

# Files in the `gpt2` repo that loading reads: each tuple is alternatives, one of which must be cached.
MODEL_FILES = (("config.json",), ("model.safetensors", "pytorch_model.bin"), ("tokenizer.json", "vocab.json"))


def residual_sae_id(layer: int) -> str:
    return get_act_name("resid_pre", layer)  # gpt2-small-res-jb names its SAEs by their hook


def attention_sae_id(layer: int) -> str:
    return f"blocks.{layer}.hook_z"  # gpt2-small-hook-z-kk's own SAE ids (the hook is blocks.{layer}.attn.hook_z)


def is_gpt2_small(model: HookedSAETransformer) -> bool:
    """Whether `model` is GPT-2 small as TransformerLens loads it, however it was loaded (by this world or by hand)."""
    return model.cfg.original_architecture == "GPT2LMHeadModel" and model.cfg.model_name == "gpt2"


def offline_mode() -> bool:
    """Whether Hugging Face's clients are in offline mode (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _sae_files(release: str, sae_id: str) -> list[tuple[str, tuple[str, ...]]]:
    """(repo id, alternative file names) that `SAE.from_pretrained(release, sae_id)` reads."""
    from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name

    repo_id, path = get_repo_id_and_folder_name(release, sae_id)
    if release == ATTENTION_RELEASE:  # a torch.save'd state dict and its training config beside it
        return [(repo_id, (path,)), (repo_id, (path.split(".pt")[0] + "_cfg.json",))]
    return [(repo_id, (f"{path}/cfg.json",)), (repo_id, (f"{path}/sae_weights.safetensors",))]


def required_files() -> list[tuple[str, tuple[str, ...]]]:
    """Every file loading this world reads at once: the model's, and the SAEs' of the exercises' layers."""
    files = [(MODEL_REPO, names) for names in MODEL_FILES]
    for layer in GPT2_EXERCISES.residual_layers:
        files += _sae_files(RESIDUAL_RELEASE, residual_sae_id(layer))
    for layer in GPT2_EXERCISES.attention_layers:
        files += _sae_files(ATTENTION_RELEASE, attention_sae_id(layer))
    return files


def missing_from_cache() -> list[str]:
    """The required files that are not in the local Hugging Face cache, as "repo/file" (empty: all there)."""
    from huggingface_hub import try_to_load_from_cache

    missing = []
    for repo_id, names in required_files():
        if not any(isinstance(try_to_load_from_cache(repo_id, name), str) for name in names):
            missing.append(f"{repo_id}/{names[0]}")
    return missing


def why_unavailable() -> str | None:
    """None if GPT-2 and its SAEs can be loaded here, else why not (in a few words). Takes at most ~3 s."""
    return availability()[0]


def availability() -> tuple[str | None, bool]:
    """(why GPT-2 cannot be loaded, or None; whether to load it from the cache alone). Probes the network once."""
    from huggingface_hub import constants

    if offline_mode():
        missing = missing_from_cache()
        if not missing:
            return None, True
        reason = (
            f"HF_HUB_OFFLINE is set and GPT-2 or its SAEs are not in the local Hugging Face cache "
            f"({constants.HF_HUB_CACHE}; missing {missing[0]}"
            + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
            + ")"
        )
        return reason, True
    # Looked up on the module, so that patching `part_utils.network.internet_reachable` (as tests do) reaches here.
    if network.internet_reachable():
        return None, False
    if not missing_from_cache():
        return None, True
    return f"{constants.ENDPOINT} cannot be reached and GPT-2 is not in the local Hugging Face cache", True


@contextlib.contextmanager
def _hub_offline(enabled: bool) -> Iterator[None]:
    """Put Hugging Face's clients in offline mode for a while, so that they read the cache and never wait on the network.

    huggingface_hub reads HF_HUB_OFFLINE once, at import, into `constants.HF_HUB_OFFLINE` (which
    transformers also consults), so that is what we set; the variable too, for any client reading it later.
    """
    if not enabled:
        yield
        return
    from huggingface_hub import constants

    saved_constant, saved_env = constants.HF_HUB_OFFLINE, os.environ.get("HF_HUB_OFFLINE")
    constants.HF_HUB_OFFLINE = True
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved_constant
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env


def _network_errors() -> tuple[type[BaseException], ...]:
    """Exceptions Hugging Face's clients raise when the network or the cache fails them.

    huggingface_hub 2.x talks HTTP through its own client, `httpx2`, and raises that client's
    exceptions (a transfer cut partway is `httpx2.RemoteProtocolError`, a subclass of its
    TransportError), not httpx's; an HTTP error status is `HfHubHTTPError`. Both clients' are listed,
    so that either version of the hub library is recognised.
    """
    import importlib

    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
    )

    errors: list[type[BaseException]] = [
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        HfHubHTTPError,
        ConnectionError,
        TimeoutError,
    ]
    for client in ("httpx2", "httpx", "requests"):
        try:
            module = importlib.import_module(client)
        except ImportError:
            continue
        errors += [module.exceptions.RequestException] if client == "requests" else [module.TransportError, module.HTTPError]
    return tuple(errors)


def _unavailable(reason: str) -> WorldUnavailable:
    return WorldUnavailable(f"The gpt2 world cannot be loaded: {reason}. To work offline, {USE_TOY_INSTEAD}.")


def _is_network_failure(error: BaseException) -> bool:
    """Whether `error` (or what caused it) is Hugging Face failing to reach the Hub or find a cached file."""
    network_errors = _network_errors()
    while error is not None:
        if isinstance(error, network_errors):
            return True
        # transformers wraps hub failures in a plain OSError that says so.
        if type(error) is OSError and ("connect" in str(error) or "offline" in str(error) or "cached files" in str(error)):
            return True
        error = error.__cause__ or error.__context__
    return False


def _load_sae(release: str, sae_id: str, device: torch.device, offline: bool) -> SAE:
    with _hub_offline(offline), warnings.catch_warnings():
        # gpt2-small-res-jb asks for center_writing_weights=True, which HookedSAETransformer.from_pretrained already does.
        warnings.filterwarnings("ignore", message=r"\s*This SAE has non-empty model_from_pretrained_kwargs", category=UserWarning)
        try:
            return SAE.from_pretrained(release=release, sae_id=sae_id, device=str(device))
        except Exception as error:
            if _is_network_failure(error):
                raise _unavailable(f"the SAE {release}/{sae_id} could not be downloaded or found in the cache ({error})") from error
            raise


def load_gpt2_world(device: torch.device | str = "cpu", probed: tuple[str | None, bool] | None = None) -> World:
    """GPT-2 small and its SAEs, from Hugging Face (or the local cache); the exercises' SAEs are loaded now.

    `probed` is what `availability()` already said (load_world probes once and passes it on).
    """
    device = torch.device(device)
    # With no network but the files cached, load from the cache alone: then nothing waits on the network.
    reason, offline = availability() if probed is None else probed
    if reason is not None:
        raise _unavailable(reason)

    with _hub_offline(offline), warnings.catch_warnings():
        # TransformerLens 3.9 steers new code to TransformerBridge; HookedSAETransformer is what the course teaches.
        warnings.filterwarnings("ignore", message=r"HookedTransformer\.from_pretrained is deprecated", category=DeprecationWarning)
        try:
            model = HookedSAETransformer.from_pretrained(MODEL_NAME, device=str(device))
        except Exception as error:
            if _is_network_failure(error):
                raise _unavailable(f"GPT-2 could not be downloaded or found in the cache ({error})") from error
            raise
    model.eval()

    layers = range(model.cfg.n_layers)
    saes = LazySAEs(
        layers, lambda layer: _load_sae(RESIDUAL_RELEASE, residual_sae_id(layer), device, offline), "residual"
    )
    attn_saes = LazySAEs(
        layers, lambda layer: _load_sae(ATTENTION_RELEASE, attention_sae_id(layer), device, offline), "attention"
    )
    saes.preload(GPT2_EXERCISES.residual_layers)
    attn_saes.preload(GPT2_EXERCISES.attention_layers)
    return World(
        name="gpt2", model=model, saes=saes, attn_saes=attn_saes, exercises=GPT2_EXERCISES, description=DESCRIPTION, facts=GPT2_FACTS
    )
