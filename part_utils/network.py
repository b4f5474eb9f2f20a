"""Whether a host answers, asked quickly: Hugging Face's own clients retry and wait on a network that is down."""

from __future__ import annotations

import socket


def internet_reachable(host: str = "huggingface.co", timeout_s: float = 3.0) -> bool:
    """Whether a TCP connection to `host` opens within `timeout_s` (DNS failure counts as no)."""
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False
