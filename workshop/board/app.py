"""The board's tornado application, behind the hub at /services/board/ (a managed service, jupyterhub_config.py).

Who may do what is the hub's decision, read from the scopes of the caller's hub token:
- the instructor, who holds the custom scope READ_ALL: the board, the live stream, every learner's events, the CSV;
- a learner, who holds only access to this service: their own progress page and their own events (others': 403);
- a learner's server, with its own hub token (JUPYTERHUB_API_TOKEN): POST an event, recorded as that token's
  owner's. Malformed events, unknown exercises or mistake ids, oversized bodies (4xx, nothing stored) and a
  learner over the rate limit (429) are refused.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from tornado import web
from tornado.iostream import StreamClosedError
from tornado.locks import Condition

from workshop.board.events import MAX_BODY_BYTES, Catalogue, InvalidEvent, RateLimit, parse_event
from workshop.board.progress import Progress, events_csv
from workshop.board.store import Store

NAME = "board"
# The custom scope (jupyterhub_config.py grants it to the instructor) that opens the whole board.
READ_ALL = "custom:board:read-all"
STATIC = Path(__file__).resolve().parent / "static"
# The live stream sends the state at most this often, however fast events arrive (the board shows a check
# within STREAM_INTERVAL_S + the page's render, well inside the 2 s it must).
STREAM_INTERVAL_S = 0.5
HEARTBEAT_S = 15.0


class Board:
    """The store, the state folded from it, and the condition the live streams wait on."""

    def __init__(self, store: Store, catalogue: Catalogue, learners: list[str], rate_limit: RateLimit | None = None) -> None:
        self.store, self.catalogue = store, catalogue
        self.progress = Progress(catalogue, learners)
        for stored in store.events():
            self.progress.add(stored)
        self.rate_limit = rate_limit or RateLimit()
        self.changed = Condition()


class Handler(HubOAuthenticated, web.RequestHandler):
    def initialize(self, board: Board) -> None:
        self.board = board
        if "hub_auth" in self.settings:  # an application's own (the unit tests' stand-in for the hub)
            self.hub_auth = self.settings["hub_auth"]

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        # Everything the pages use is served here: no other origin, no inline script.
        self.set_header("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")

    def is_instructor(self) -> bool:
        return READ_ALL in self.current_user.get("scopes", [])

    def require_instructor(self) -> None:
        if not self.is_instructor():
            raise web.HTTPError(403, "only the instructor may open the board")

    def page_xsrf(self) -> str:
        """The hub's XSRF token of this login: the page's own requests (the stream, fetch) carry it, as the hub
        asks of every cookie-authenticated request that is not a page load."""
        return self.xsrf_token.decode()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        reason = kwargs.get("exc_info", (None, None))[1]
        message = getattr(reason, "log_message", None) or self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status_code, "message": message}))


class BoardPage(Handler):
    @web.authenticated
    def get(self) -> None:
        self.require_instructor()
        self.render(str(STATIC / "board.html"), prefix=self.settings["prefix"], xsrf=self.page_xsrf())


class MyPage(Handler):
    @web.authenticated
    def get(self) -> None:
        self.render(str(STATIC / "me.html"), prefix=self.settings["prefix"], learner=self.current_user["name"], xsrf=self.page_xsrf())


class StateApi(Handler):
    @web.authenticated
    def get(self) -> None:
        self.require_instructor()
        self.finish(self.board.progress.state(time.time()))


class StreamApi(Handler):
    """Server-sent events: the board's state now, then again whenever it changes."""

    @web.authenticated
    async def get(self) -> None:
        self.require_instructor()
        self.set_header("Content-Type", "text/event-stream")
        sent = -1
        try:
            while True:
                if self.board.progress.version != sent:
                    sent = self.board.progress.version
                    self.write(f"data: {json.dumps(self.board.progress.state(time.time()))}\n\n")
                    await self.flush()
                    await asyncio.sleep(STREAM_INTERVAL_S)
                elif not await self.board.changed.wait(timeout=timedelta(seconds=HEARTBEAT_S)):
                    self.write(": still here\n\n")  # a comment line: keeps proxies from closing an idle stream
                    await self.flush()
        except StreamClosedError:
            return


class EventsApi(Handler):
    """GET: one learner's events (?learner=, default the caller). POST: an event from a learner's server."""

    @web.authenticated
    def get(self) -> None:
        learner = self.get_argument("learner", self.current_user["name"])
        if learner != self.current_user["name"]:
            self.require_instructor()
        events = [{"received": s.received, **{k: getattr(s.event, k) for k in ("id", "exercise", "check", "part", "passed", "duration_s", "hint")}} for s in self.board.store.events(learner)]
        self.finish({"learner": learner, "events": events})

    async def post(self) -> None:
        scheme, _, token = self.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in ("token", "bearer") or not token:
            raise web.HTTPError(401, "send the server's hub token: Authorization: token $JUPYTERHUB_API_TOKEN")
        if len(self.request.body) > MAX_BODY_BYTES:
            raise web.HTTPError(413, f"an event is at most {MAX_BODY_BYTES} bytes")
        owner = await self.hub_auth.user_for_token(token, sync=False)
        if not owner or owner.get("kind", "user") != "user":
            raise web.HTTPError(403, "the hub does not know this token as a user's")
        learner = owner["name"]
        claimed = self.get_query_argument("learner", learner)
        if claimed != learner:
            raise web.HTTPError(403, f"this token is {learner}'s: it cannot report for {claimed}")
        try:
            event = parse_event(self.request.body, self.board.catalogue)
        except InvalidEvent as error:
            raise web.HTTPError(400, str(error)) from None
        if not self.board.rate_limit.allow(learner):
            raise web.HTTPError(429, "too many events from this learner; slow down")
        stored = self.board.store.add(learner, event)
        if stored is not None:
            self.board.progress.add(stored)
            self.board.changed.notify_all()
        self.set_status(201 if stored is not None else 200)
        self.finish({"stored": stored is not None})


class CsvExport(Handler):
    @web.authenticated
    def get(self, what: str) -> None:
        self.require_instructor()
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="board-{what}.csv"')
        self.finish(self.board.progress.grid_csv() if what == "grid" else events_csv(list(self.board.store.events())))


def make_app(board: Board, prefix: str, **settings: Any) -> web.Application:
    """The board's routes under `prefix` (the hub's /services/board/)."""
    routes = [
        (prefix, BoardPage),
        (prefix + "me", MyPage),
        (prefix + "api/state", StateApi),
        (prefix + "api/stream", StreamApi),
        (prefix + "api/events", EventsApi),
        (prefix + r"export/(grid|events)\.csv", CsvExport),
    ]
    return web.Application(
        [(path, handler, {"board": board}) for path, handler in routes]
        + [
            (prefix + "oauth_callback", HubOAuthCallbackHandler),
            (prefix + "static/(.*)", web.StaticFileHandler, {"path": str(STATIC)}),
        ],
        prefix=prefix,
        cookie_secret=os.urandom(32),
        **settings,
    )


def main() -> None:
    """Run as the hub's managed service: the hub sets JUPYTERHUB_SERVICE_URL and _PREFIX; jupyterhub_config.py sets
    WORKSHOP_DIR and WORKSHOP_ROSTER."""
    from urllib.parse import urlparse

    from tornado.ioloop import IOLoop

    from workshop import settings
    from workshop.prepare import read_roster

    workshop = settings.read()
    state = workshop.directory / "board"
    state.mkdir(mode=0o700, exist_ok=True)
    learners = [p.username for p in read_roster(workshop.roster) if p.role == "learner"]
    board = Board(Store(state / "board.sqlite"), Catalogue.of_course(), learners)
    url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    make_app(board, os.environ["JUPYTERHUB_SERVICE_PREFIX"]).listen(url.port, url.hostname)
    IOLoop.current().start()


if __name__ == "__main__":
    main()
