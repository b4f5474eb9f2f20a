"""Choosing a device, and looking at (and freeing) the memory a session holds."""

from __future__ import annotations

import gc
import os

import torch

from part_utils.settings import DEVICE_ENV


def get_device() -> torch.device:
    """The fastest device here: CUDA, then Apple's MPS, then the CPU. `LATENT_GRADIENTS_DEVICE` overrides."""
    if override := os.environ.get(DEVICE_ENV):
        return torch.device(override)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def memory_report(device: torch.device | str | None = None) -> str:
    """One line on the accelerator memory in use; on the CPU, the process's resident memory."""
    device = torch.device(device) if device is not None else get_device()
    gib = 1024**3
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        allocated = torch.cuda.memory_allocated(device)
        return f"CUDA: {allocated / gib:.2f} GiB allocated by torch, {(total - free) / gib:.2f} of {total / gib:.2f} GiB in use"
    if device.type == "mps":
        return f"MPS: {torch.mps.current_allocated_memory() / gib:.2f} GiB allocated by torch"
    with open("/proc/self/status") if os.path.exists("/proc/self/status") else open(os.devnull) as status:
        rss_kib = next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), None)
    return "CPU: resident memory unknown on this system" if rss_kib is None else f"CPU: {rss_kib / 1024**2:.2f} GiB resident"


def dense_output_basis(n_positions: int, d_sae: int) -> tuple[int, int]:
    """(outputs, bytes of jacrev's float32 one-hot basis) when every latent at every position is an output."""
    n_outputs = n_positions * d_sae
    return n_outputs, n_outputs**2 * 4


def free_memory() -> None:
    """Collect unreachable Python objects and return cached accelerator memory to the driver."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if torch.backends.mps.is_available():
        torch.mps.empty_cache()
