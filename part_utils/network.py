"""Is the Hugging Face Hub reachable? A quick probe that needs only the standard library and huggingface_hub.

It imports neither torch nor sae_lens, so that a script can fail within seconds, before those imports
(which take tens of seconds on a busy machine), when there is no network.
"""

from __future__ import annotations

import socket
import threading
import urllib.parse
import urllib.request


def hub_address() -> tuple[str, int]:
    """(host, port) a connection to the Hugging Face Hub opens first: its HTTPS proxy if one applies, else the
    endpoint itself (`HF_ENDPOINT`, default https://huggingface.co), as huggingface_hub's own client would."""
    from huggingface_hub import constants

    endpoint = urllib.parse.urlsplit(constants.ENDPOINT)
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (80 if endpoint.scheme == "http" else 443)
    proxy = urllib.request.getproxies().get(endpoint.scheme or "https")
    if proxy and not urllib.request.proxy_bypass(host):
        parsed = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return parsed.hostname or host, parsed.port or 8080
    return host, port


def internet_reachable(host: str | None = None, timeout_s: float = 3.0) -> bool:
    """Whether a TCP connection to `host` (port 443; default: the Hub or its proxy, see `hub_address`) opens
    within `timeout_s` in all.

    Name resolution is part of the budget: `socket.create_connection`'s timeout does not cover DNS,
    which can hang for much longer on a broken network, so the attempt runs in a daemon thread that is
    abandoned at the deadline.
    """
    outcome: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection(hub_address() if host is None else (host, 443), timeout=timeout_s):
                outcome.append(True)
        except (OSError, ValueError):
            outcome.append(False)

    attempt = threading.Thread(target=connect, name="hub-probe", daemon=True)
    attempt.start()
    attempt.join(timeout_s)
    return bool(outcome and outcome[0])
