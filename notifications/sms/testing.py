"""A local stand-in for a provider's HTTP API, for tests and demos.

    with LocalApiServer(lambda request: (200, {"Code": "OK", "BizId": "1"})) as server:
        settings.SMS_ALIYUN_ENDPOINT = server.url + "/"
        ...
        (request,) = server.requests

It serves on 127.0.0.1 (a free port) from a thread, records every request and answers
with ``respond(request) -> (status, body)`` (a dict or list body is sent as JSON). An
exception in ``respond`` is answered with a 500 and kept in ``errors``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def form(self) -> dict[str, str]:
        """The form fields of the body (or of the query string for a GET)."""
        text = self.body.decode() if self.method == "POST" else self.query
        return dict(parse_qsl(text, keep_blank_values=True))

    def json(self) -> Any:
        return json.loads(self.body)


Responder = Callable[[RecordedRequest], tuple[int, Any]]


class LocalApiServer:
    def __init__(self, respond: Responder):
        self.respond = respond
        self.requests: list[RecordedRequest] = []
        self.errors: list[BaseException] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> LocalApiServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self._answer()

            def do_POST(self):
                self._answer()

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                request = RecordedRequest(
                    method=self.command,
                    path=parts.path,
                    query=parts.query,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length),
                )
                owner.requests.append(request)
                try:
                    status, body = owner.respond(request)
                except Exception as exc:
                    owner.errors.append(exc)
                    status, body = 500, {"error": f"{type(exc).__name__}: {exc}"}
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format, *args):  # noqa: A002  (keep test output quiet)
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
