"""A Hugging Face Hub on loopback: serves a fake cache's files over HTTP, as `HF_ENDPOINT` would be served.

`serve_hub(hub, break_files)` starts a server on 127.0.0.1 that answers huggingface_hub's download
requests (`HEAD` and `GET /{repo_id}/resolve/{revision}/{path}`, with the `X-Repo-Commit`, `ETag` and
`Content-Length` headers the client reads) from the snapshots of `hub` (see fake_hf_cache.py). Files
named in `break_files` are cut partway: the server promises the whole file, sends half and closes the
connection, as a network that drops mid-transfer does. Nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fake_hf_cache import FAKE_COMMIT


@contextmanager
def serve_hub(hub: Path, break_files: frozenset[str] = frozenset(), break_under: str = "") -> Iterator[str]:
    """Yield the server's endpoint URL (for HF_ENDPOINT) while it runs.

    A file is cut when its name is in `break_files` and its URL path contains `break_under`.
    """

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet: the test reads the client's side
            pass

        def _file(self) -> Path | None:
            parts = self.path.split("?")[0].strip("/").split("/")
            if "resolve" not in parts:
                return None
            at = parts.index("resolve")
            repo, relative = "/".join(parts[:at]), "/".join(parts[at + 2 :])
            path = hub / ("models--" + repo.replace("/", "--")) / "snapshots" / FAKE_COMMIT / relative
            return path if path.is_file() else None

        def _headers(self) -> bytes | None:
            path = self._file()
            if path is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("X-Repo-Commit", FAKE_COMMIT)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return data

        def do_HEAD(self) -> None:
            self._headers()

        def do_GET(self) -> None:
            data = self._headers()
            if data is None:
                return
            url_path = self.path.split("?")[0]
            if Path(url_path).name in break_files and break_under in url_path:
                self.wfile.write(data[: len(data) // 2])
                self.close_connection = True
            else:
                self.wfile.write(data)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="fake-hub", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
