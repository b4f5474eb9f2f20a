"""Each run of a learner check, reported to the workshop board (workshop/board/) when there is one.

Active only in a learner's server in the workshop: the hub's spawner sets LATENT_GRADIENTS_BOARD_URL there,
beside the server's own hub token (JUPYTERHUB_API_TOKEN), which tells the board who the learner is. Anywhere
else (`make lab`, CI, the project's tests) the checks are exported unwrapped, so nothing is sent and nothing
is slower. A grading kernel never reports, whatever its environment holds.

Sending never holds up or breaks a check: the event goes on a bounded queue that one background thread posts
from; a full queue, a board that is down or slow, any error at all, and the event is dropped silently.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

from part_utils.settings import BOARD_URL_ENV, GRADING_WORLD_ENV
from tests._report import CheckFailed
from tests.hints import hint_id

TOKEN_ENV = "JUPYTERHUB_API_TOKEN"
QUEUE_SIZE = 256
POST_TIMEOUT_S = 5.0


def board_url() -> str | None:
    """Where to send events, or None where nothing may be sent."""
    if os.environ.get(GRADING_WORLD_ENV):  # set in every grading kernel, sandboxed or not
        return None
    if not (os.environ.get(BOARD_URL_ENV) and os.environ.get(TOKEN_ENV)):
        return None
    return os.environ[BOARD_URL_ENV]


class Reporter:
    """Posts events, in order, from one daemon thread."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.events: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=QUEUE_SIZE)
        threading.Thread(target=self._post_forever, name="board-reporter", daemon=True).start()

    def send(self, event: dict[str, Any]) -> None:
        try:
            self.events.put_nowait(event)
        except queue.Full:
            pass  # the board lags behind: it misses this run, the check does not wait for it

    def _post_forever(self) -> None:
        while True:
            event = self.events.get()
            request = urllib.request.Request(
                self.url,
                data=json.dumps(event).encode(),
                headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
                method="POST",
            )
            try:
                urllib.request.urlopen(request, timeout=POST_TIMEOUT_S).close()
            except Exception:  # noqa: BLE001 (a board that refuses or fails is the board's problem, never the check's)
                pass


@functools.cache
def _reporter(url: str) -> Reporter:
    return Reporter(url, os.environ[TOKEN_ENV])


def event(exercise: str, check: str, part: str | None, passed: bool, seconds: float, hint: str | None) -> dict[str, Any]:
    """One check run, as the board's API takes it (workshop/board/events.py validates it)."""
    return {
        "id": uuid.uuid4().hex,
        "exercise": exercise,
        "check": check,
        "part": part or "all",
        "passed": passed,
        "duration_s": round(seconds, 3),
        "hint": hint,
    }


def reported(check: Callable[..., None], exercise: str) -> Callable[..., None]:
    """`check`, reporting each run to the board; `check` itself where there is no board."""
    url = board_url()
    if url is None:
        return check
    reporter = _reporter(url)

    @functools.wraps(check)
    def run(*args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        try:
            check(*args, **kwargs)
        except CheckFailed as failure:
            reporter.send(event(exercise, check.__name__, kwargs.get("part"), False, time.perf_counter() - start, hint_id(failure.hint)))
            raise
        except BaseException:
            reporter.send(event(exercise, check.__name__, kwargs.get("part"), False, time.perf_counter() - start, None))
            raise
        reporter.send(event(exercise, check.__name__, kwargs.get("part"), True, time.perf_counter() - start, None))

    return run
