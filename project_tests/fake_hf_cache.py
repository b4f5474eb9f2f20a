"""A fake local Hugging Face cache holding GPT-2 and its two SAE releases, in the real formats, at tiny sizes.

`build_fake_hf_cache(hf_home)` writes, under `hf_home/hub/`, what a learner's cache holds after
`load_world("gpt2")` has run once online:

- `models--gpt2`: GPT-2's config with tiny sizes but the real 50257-token vocabulary, its weights,
  generation config and real tokenizer (built offline), all written by `transformers`' `save_pretrained`;
- `gpt2-small-res-jb`'s repo: per hook, a pre-6.0 SAELens `cfg.json`, `sae_weights.safetensors` and
  `sparsity.safetensors`;
- `gpt2-small-hook-z-kk`'s repo: per layer, a `torch.save`d state dict and its training config, the
  format `sae_lens`' `connor_rob_hook_z` loader reads.

Repo ids and file paths come from `sae_lens`' own `pretrained_saes.yaml`, so the cache is laid out
exactly where `SAE.from_pretrained` looks, each repo under `snapshots/{commit}/` with `refs/main`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import torch
from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name
from safetensors.torch import save_file
from transformer_lens.utilities import get_act_name

from part_utils.gpt2_world import attention_sae_id, residual_sae_id

RESIDUAL_RELEASE = "gpt2-small-res-jb"
ATTENTION_RELEASE = "gpt2-small-hook-z-kk"
GPT2_REPO = "gpt2"
# Any 40 hex digits will do; a fixed one keeps the paths the same run to run.
FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def snapshot_dir(hub: Path, repo_id: str, commit: str = FAKE_COMMIT) -> Path:
    """`hub/models--{org}--{name}/snapshots/{commit}`, with `refs/main` pointing at `commit`."""
    repo_dir = hub / ("models--" + repo_id.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def build_fake_hf_cache(
    hf_home: Path,
    n_layers: int = 12,
    d_model: int = 32,
    n_heads: int = 2,
    n_ctx: int = 128,
    d_sae: int = 64,
    sae_layers: Iterable[int] | None = None,
    seed: int = 0,
) -> Path:
    """Write the fake cache under `hf_home/hub` and return that hub folder (what HF_HUB_CACHE names).

    `sae_layers` are the layers that get SAE files in both releases (default: all of them). As in the real
    `gpt2-small-hook-z-kk`, where layer 4's SAE has 24,576 latents and layer 5's 49,152, the attention SAEs
    do not all have the same size: odd layers get `2 * d_sae` latents, so code that assumes one size fails.
    """
    hub = Path(hf_home) / "hub"
    generator = torch.Generator().manual_seed(seed)
    _write_gpt2(snapshot_dir(hub, GPT2_REPO), n_layers, d_model, n_heads, n_ctx, seed)
    for layer in range(n_layers) if sae_layers is None else sae_layers:
        _write_residual_sae(hub, layer, d_model, d_sae, generator)
        _write_attention_sae(hub, layer, d_model, attention_d_sae(layer, d_sae), generator)
    return hub


def attention_d_sae(layer: int, d_sae: int) -> int:
    """The fake attention SAE's width at `layer`: unequal between neighbouring layers, as in the real release."""
    return 2 * d_sae if layer % 2 else d_sae


def _write_gpt2(snapshot: Path, n_layers: int, d_model: int, n_heads: int, n_ctx: int, seed: int) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    from part_utils.tokenizer import GPT2_VOCAB_SIZE, gpt2_tokenizer

    # GPT-2's own config.json, shrunk: only the sizes differ from the real file.
    config = GPT2Config(
        vocab_size=GPT2_VOCAB_SIZE,
        n_positions=n_ctx,
        n_ctx=n_ctx,
        n_embd=d_model,
        n_layer=n_layers,
        n_head=n_heads,
        activation_function="gelu_new",
        layer_norm_epsilon=1e-5,
        bos_token_id=50256,
        eos_token_id=50256,
        architectures=["GPT2LMHeadModel"],
        task_specific_params={"text-generation": {"do_sample": True, "max_length": 50}},
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config).eval()
    # GPT-2's initialisation (std 0.02) leaves every residual stream nearly the same size; a larger
    # embedding makes tokens distinguishable, so that the SAEs' latents differ between tokens.
    with torch.no_grad():
        model.transformer.wte.weight.normal_(0.0, 1.0)
        model.transformer.wpe.weight.normal_(0.0, 0.3)
    model.save_pretrained(snapshot, safe_serialization=True)
    gpt2_tokenizer().save_pretrained(snapshot)


# Encoder thresholds that let about one latent in six to ten fire in the fake GPT-2 (unit directions, so a
# latent's pre-activation has about the spread of one coordinate of the activation): its residual
# stream has norm ~6 in 32 dimensions, its concatenated hook_z ~0.3.
RESIDUAL_THRESHOLD = 1.0
ATTENTION_THRESHOLD = 0.08


def _sae_weights(d_in: int, d_sae: int, threshold: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A small standard SAE: unit decoder rows, a tied encoder, and biases of about -`threshold`."""
    directions = torch.randn(d_sae, d_in, generator=generator)
    directions /= directions.norm(dim=-1, keepdim=True)
    return {
        "W_enc": directions.T.contiguous(),
        "W_dec": directions.contiguous(),
        "b_enc": -threshold * (1 + 0.2 * torch.rand(d_sae, generator=generator)),
        "b_dec": torch.zeros(d_in),
    }


def _write_residual_sae(hub: Path, layer: int, d_model: int, d_sae: int, generator: torch.Generator) -> None:
    sae_id = residual_sae_id(layer)
    repo_id, folder_name = get_repo_id_and_folder_name(RESIDUAL_RELEASE, sae_id)
    folder = snapshot_dir(hub, repo_id) / folder_name
    folder.mkdir(parents=True, exist_ok=True)
    # The keys of the release's real cfg.json (a pre-6.0 SAELens training config), with tiny sizes.
    cfg = {
        "model_name": "gpt2-small",
        "hook_point": sae_id,
        "hook_point_layer": layer,
        "hook_point_head_index": None,
        "dataset_path": "Skylion007/openwebtext",
        "is_dataset_tokenized": False,
        "context_size": 128,
        "use_cached_activations": False,
        "cached_activations_path": f"activations/Skylion007_openwebtext/gpt2-small/{sae_id}",
        "d_in": d_model,
        "n_batches_in_buffer": 128,
        "total_training_tokens": 300000000,
        "store_batch_size": 32,
        "device": "mps",
        "seed": 42,
        "dtype": "torch.float32",
        "b_dec_init_method": "geometric_median",
        "expansion_factor": d_sae // d_model,
        "from_pretrained_path": None,
        "l1_coefficient": 8e-05,
        "lr": 0.0004,
        "lr_scheduler_name": None,
        "lr_warm_up_steps": 5000,
        "train_batch_size": 4096,
        "use_ghost_grads": False,
        "feature_sampling_window": 1000,
        "feature_sampling_method": None,
        "resample_batches": 1028,
        "feature_reinit_scale": 0.2,
        "dead_feature_window": 5000,
        "dead_feature_estimation_method": "no_fire",
        "dead_feature_threshold": 1e-08,
        "log_to_wandb": True,
        "wandb_project": "mats_sae_training_gpt2_small_resid_pre_5",
        "wandb_entity": None,
        "wandb_log_frequency": 100,
        "n_checkpoints": 10,
        "checkpoint_path": "checkpoints/fake",
        "d_sae": d_sae,
        "tokens_per_buffer": 67108864,
        "run_name": f"{d_sae}-L1-8e-05-LR-0.0004-Tokens-3.000e+08",
    }
    (folder / "cfg.json").write_text(json.dumps(cfg, indent=2))
    save_file(_sae_weights(d_model, d_sae, RESIDUAL_THRESHOLD, generator), folder / "sae_weights.safetensors")
    save_file({"sparsity": torch.full((d_sae,), -2.0)}, folder / "sparsity.safetensors")


def _write_attention_sae(hub: Path, layer: int, d_model: int, d_sae: int, generator: torch.Generator) -> None:
    repo_id, weights_path = get_repo_id_and_folder_name(ATTENTION_RELEASE, attention_sae_id(layer))
    snapshot = snapshot_dir(hub, repo_id)
    # Connor Kissane's training config: sae_lens reads act_size, dict_size and act_name from it.
    cfg = {
        "seed": 49,
        "batch_size": 4096,
        "buffer_mult": 384,
        "lr": 0.0012,
        "l1_coeff": 1.0,
        "dict_mult": d_sae // d_model,
        "seq_len": 128,
        "enc_dtype": "fp32",
        "model_name": "gpt2-small",
        "site": "z",
        "layer": layer,
        "device": "cuda",
        "head": "cat",
        "concat_heads": True,
        "resample_scheme": "anthropic",
        "act_name": get_act_name("z", layer),
        "act_size": d_model,
        "dict_size": d_sae,
        "name": f"gpt2-small_{layer}_{d_sae}_z",
    }
    (snapshot / (weights_path.split(".pt")[0] + "_cfg.json")).write_text(json.dumps(cfg, indent=2))
    torch.save(_sae_weights(d_model, d_sae, ATTENTION_THRESHOLD, generator), snapshot / weights_path)
