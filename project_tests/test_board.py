"""The workshop board's API without a hub: validation, idempotency, who may read and post what, the rate limit,
the grid and class panel it folds from the events, and the checks' reports (tests/_board.py).

The hub is replaced by a stand-in with the interface `jupyterhub.services.auth.HubAuth` offers the board
(tokens -> user models with scopes), so the decisions tested are the board's own and HubAuthenticated's.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from jupyterhub.services.auth import check_scopes
from tornado.testing import AsyncHTTPTestCase, gen_test

import solutions
import tests
from part_utils.settings import BOARD_URL_ENV, GRADING_WORLD_ENV
from tests import _board
from tests.hints import BY_ID, hint_id
from tests.latent_to_latent import HINT_ERROR_TERM, HINT_LAYERS
from workshop.board.app import NAME, READ_ALL, Board, make_app
from workshop.board.events import MAX_BODY_BYTES, Catalogue, RateLimit
from workshop.board.progress import FAILING, PASSED
from workshop.board.store import Store

PREFIX = f"/services/{NAME}/"
ACCESS = f"access:services!service={NAME}"
# token -> the user model the hub would return for it.
USERS = {
    "teacher-browser": {"kind": "user", "name": "teacher", "scopes": [ACCESS, READ_ALL]},
    "alice-browser": {"kind": "user", "name": "alice", "scopes": [ACCESS]},
    "alice-server": {"kind": "user", "name": "alice", "scopes": ["access:servers!user=alice"]},
    "bob-server": {"kind": "user", "name": "bob", "scopes": ["access:servers!user=bob"]},
    "a-service": {"kind": "service", "name": "other", "scopes": []},
}


class StandInHubAuth:
    """What the board asks of HubAuth, answered from USERS."""

    access_scopes = {ACCESS}
    base_url = PREFIX
    login_url = ""  # no login redirect: an unauthenticated page request is refused

    def check_scopes(self, required, user):
        return check_scopes(required, set(user["scopes"]))

    def get_user(self, handler, *, sync=True):
        scheme, _, token = handler.request.headers.get("Authorization", "").partition(" ")
        return USERS.get(token)

    def _get_xsrf_token_id(self, handler):
        return b"session"

    def _persist_url_token_if_set(self, handler):
        pass

    async def user_for_token(self, token, use_cache=True, session_id="", *, sync=True):
        return USERS.get(token)


def event(**fields) -> dict:
    return {"id": uuid.uuid4().hex, "exercise": "latent_to_latent", "check": "test_latent_to_latent_gradients", "part": "all",
            "passed": False, "duration_s": 0.5, "hint": "error_term_not_set", **fields}  # fmt: skip


class BoardApi(AsyncHTTPTestCase):
    def get_app(self):
        self.store = Store(":memory:")
        self.board = Board(self.store, Catalogue.of_course(), ["alice", "bob"], RateLimit(burst=5, per_second=0.0))
        return make_app(self.board, PREFIX, hub_auth=StandInHubAuth())

    def post(self, body, token="alice-server", query=""):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.fetch(PREFIX + "api/events" + query, method="POST", body=data, headers={"Authorization": f"token {token}"})

    def get(self, path, token):
        return self.fetch(PREFIX + path, headers={"Authorization": f"token {token}"}, follow_redirects=False)

    def test_an_event_is_stored_as_the_tokens_owner_and_a_resent_one_counted_once(self):
        sent = event()
        assert self.post(sent).code == 201
        assert self.post(sent).code == 200
        assert self.post(sent, token="bob-server").code == 201  # the same id from another learner is theirs
        assert [(s.learner, s.event.id) for s in self.store.events()] == [("alice", sent["id"]), ("bob", sent["id"])]

    def test_bad_events_are_refused_and_nothing_is_stored(self):
        for body, code in [
            (b"not json", 400),
            (b"[]", 400),
            ({k: v for k, v in event().items() if k != "part"}, 400),
            (event(learner="alice"), 400),  # the learner comes from the token, never from the event
            (event(id="1234"), 400),
            (event(exercise="no_such_exercise"), 400),
            (event(check="test_sparse_tensor"), 400),
            (event(part="nodes"), 400),
            (event(passed="yes"), 400),
            (event(duration_s=-1), 400),
            (event(duration_s=True), 400),
            (event(hint="no_such_mistake"), 400),
            (event(passed=True), 400),  # a pass names no mistake
            (b"{" + b" " * MAX_BODY_BYTES + b"}", 413),
        ]:
            response = self.post(body)
            assert response.code == code, (body, response.code, response.body)
            assert json.loads(response.body)["message"]
        assert self.store.count() == 0

    def test_only_a_hub_token_of_a_user_may_post_and_only_for_themselves(self):
        assert self.fetch(PREFIX + "api/events", method="POST", body=json.dumps(event())).code == 401
        assert self.post(event(), token="forged").code == 403
        assert self.post(event(), token="a-service").code == 403
        assert self.post(event(), token="bob-server", query="?learner=alice").code == 403
        assert self.store.count() == 0

    def test_a_flood_from_one_learner_is_cut_and_others_are_not(self):
        codes = [self.post(event()).code for _ in range(8)]
        assert codes == [201] * 5 + [429] * 3
        assert self.post(event(), token="bob-server").code == 201
        assert self.store.count() == 6

    def test_the_board_is_the_instructors_and_a_learner_reads_only_their_own_events(self):
        self.post(event())
        for path in ("", "api/state", "export/grid.csv", "export/events.csv", "api/events?learner=bob"):
            assert self.get(path, "teacher-browser").code == 200, path
            assert self.get(path, "alice-browser").code == 403, path
        assert self.get("", "alice-server").code == 403  # a server's token has no access to the service
        mine = json.loads(self.get("api/events", "alice-browser").body)
        assert mine["learner"] == "alice" and len(mine["events"]) == 1
        assert self.get("me", "alice-browser").code == 200

    def test_the_grid_puts_the_longest_stuck_first_and_the_panel_counts_mistakes(self):
        catalogue = self.board.catalogue
        self.board.rate_limit = RateLimit()
        self.post(event(check="test_sparse_tensor", exercise="sparse_tensor", passed=True, hint=None), token="alice-server")
        self.post(event(), token="bob-server")
        time.sleep(0.01)
        self.post(event(), token="alice-server")
        state = json.loads(self.get("api/state", "teacher-browser").body)
        assert [learner["name"] for learner in state["learners"]] == ["bob", "alice"]
        assert state["learners"][1]["cells"]["sparse_tensor"]["status"] == PASSED
        assert state["learners"][0]["cells"]["latent_to_latent"] | {"since": None} == {
            "status": FAILING, "mistake": "error_term_not_set", "label": catalogue.hints["error_term_not_set"], "since": None, "runs": 1}  # fmt: skip
        panel = state["panel"]["latent_to_latent"]
        assert panel["mistakes"] == [{"id": "error_term_not_set", "label": "error term not set", "learners": 2}]
        assert state["panel"]["sparse_tensor"]["passed"] == 1
        csv = self.get("export/grid.csv", "teacher-browser").body.decode()
        assert "bob,latent_to_latent,failing,error_term_not_set" in csv

    @gen_test(timeout=30)
    async def test_the_live_stream_sends_a_new_event_within_2_s(self):
        received = bytearray()
        arrived = asyncio.Event()

        def on_chunk(chunk: bytes) -> None:
            received.extend(chunk)
            if b"error_term_not_set" in received:
                arrived.set()

        headers = {"Authorization": "token teacher-browser"}
        stream = self.http_client.fetch(self.get_url(PREFIX + "api/stream"), headers=headers, streaming_callback=on_chunk, request_timeout=60)
        await asyncio.sleep(0.1)
        assert received.startswith(b"data: ") and b"error_term_not_set" not in received  # the state at once
        start = time.monotonic()
        await self.http_client.fetch(self.get_url(PREFIX + "api/events"), method="POST", body=json.dumps(event()), headers={"Authorization": "token bob-server"})
        await asyncio.wait_for(arrived.wait(), timeout=2)
        assert time.monotonic() - start < 2
        self.http_client.close()
        stream.cancel()


def test_the_history_survives_a_restart(tmp_path):
    store = Store(tmp_path / "board.sqlite")
    catalogue = Catalogue.of_course()
    from workshop.board.events import Event

    store.add("alice", Event(uuid.uuid4().hex, "sparse_tensor", "test_sparse_tensor", "all", True, 0.1, None))
    store.close()
    board = Board(Store(tmp_path / "board.sqlite"), catalogue, ["alice"])
    assert board.progress.cell("alice", "sparse_tensor").status == PASSED


def test_hint_ids_are_unique_and_name_the_checks_hints():
    assert len(BY_ID) == len({hint.text for hint in BY_ID.values()})
    assert hint_id(HINT_ERROR_TERM) == "error_term_not_set"
    assert hint_id("Your activations match start_at_layer=0, stop_at_layer=2. " + HINT_LAYERS) == "wrong_layers"
    assert hint_id("a one-off explanation") == "unnamed"
    assert hint_id(None) is None


class Recorder(BaseHTTPRequestHandler):
    received: list[tuple[str, dict]] = []

    def do_POST(self):
        Recorder.received.append((self.headers["Authorization"], json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Recorder.received.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/services/board/api/events"
    server.shutdown()
    server.server_close()


def test_a_check_reports_each_run_with_its_servers_token(recorder, monkeypatch):
    monkeypatch.setenv(BOARD_URL_ENV, recorder)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "server-token")
    monkeypatch.delenv(GRADING_WORLD_ENV, raising=False)
    check = _board.reported(tests.EXERCISES[0].check, "sparse_tensor")
    check(solutions.SparseTensor)
    with pytest.raises(AttributeError):  # not even a SparseTensor: a failed run all the same
        check(object)
    deadline = time.monotonic() + 5
    while len(Recorder.received) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    (auth_1, passed), (_, failed) = Recorder.received
    assert auth_1 == "token server-token"
    assert (passed["exercise"], passed["check"], passed["passed"], passed["hint"]) == ("sparse_tensor", "test_sparse_tensor", True, None)
    assert failed["passed"] is False and passed["id"] != failed["id"]


def test_a_check_does_not_wait_for_a_board_that_does_not_answer(monkeypatch):
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections, never answers
    monkeypatch.setenv(BOARD_URL_ENV, f"http://127.0.0.1:{silent.getsockname()[1]}/services/board/api/events")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "server-token")
    monkeypatch.delenv(GRADING_WORLD_ENV, raising=False)
    check = _board.reported(tests.EXERCISES[0].check, "sparse_tensor")
    start = time.perf_counter()
    for _ in range(3):
        check(solutions.SparseTensor)
    assert time.perf_counter() - start < 3 * 0.2 + 1.0  # the checks' own time is well under that bound
    silent.close()


def test_nothing_is_reported_outside_a_hub_or_in_a_grading_kernel(monkeypatch):
    check = tests.EXERCISES[0].check
    monkeypatch.delenv(BOARD_URL_ENV, raising=False)
    assert _board.reported(check, "sparse_tensor") is check
    monkeypatch.setenv(BOARD_URL_ENV, "http://127.0.0.1:9/")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "t")
    monkeypatch.setenv(GRADING_WORLD_ENV, "toy")
    assert _board.reported(check, "sparse_tensor") is check
    assert torch.is_tensor(torch.zeros(1))
