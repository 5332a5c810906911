"""One loopback HTTP server under the tests' hand-written stand-ins (Tiingo's hostile replies, the Lambda
Invoke API): the clients under test (urllib3, boto3) then run for real, with their own connection
handling, retry configuration and error parsing, which a mock of the client would skip.

``answer(request) -> (status, headers, body)`` decides each reply (``Content-Type`` is JSON unless the
headers say otherwise); ``requests`` records what arrived. Used as a context manager, or ``start()`` /
``close()``; the server runs in a daemon thread.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

Reply = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query
    params: dict[str, str]
    headers: Message  # case-insensitive ``get``
    body: bytes

    @property
    def authorization(self) -> str | None:
        return self.headers.get("Authorization")


def json_reply(body: Any, status: int = 200, **headers: str) -> Reply:
    """``body`` as JSON; a ``str`` body is sent as it is (for NaN literals and broken JSON)."""
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return status, {"Content-Type": "application/json", **headers}, raw


class LoopbackServer:
    def __init__(self, answer: Callable[[Request], Reply]) -> None:
        self.answer = answer
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = Request(self.command, parts.path, dict(parse_qsl(parts.query)), self.headers, body)
                with outer._lock:
                    outer.requests.append(request)
                status, headers, data = outer.answer(request)
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
