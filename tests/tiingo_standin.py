"""A Tiingo stand-in on loopback HTTP whose every answer the test chooses: hostile replies the simulator
has no fault for (NaN rows, echoed tokens, odd error pages), scripted sequences, token checks.

``answer(request) -> (status, headers, body)`` decides each reply; ``requests`` records what arrived
(path, query, the Authorization header). Used as a context manager; the server runs in a daemon thread.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

Reply = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class Arrived:
    path: str
    params: dict[str, str]
    authorization: str | None


def json_reply(body: Any, status: int = 200, **headers: str) -> Reply:
    """``body`` as JSON; a ``str`` body is sent as it is (for NaN literals and broken JSON)."""
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return status, {"Content-Type": "application/json", **headers}, raw


class TiingoStandIn:
    def __init__(self, answer: Callable[[Arrived], Reply]) -> None:
        self.answer = answer
        self.requests: list[Arrived] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                arrived = Arrived(parts.path, dict(parse_qsl(parts.query)), self.headers.get("Authorization"))
                with outer._lock:
                    outer.requests.append(arrived)
                status, headers, body = outer.answer(arrived)
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    @classmethod
    def scripted(cls, script: list[Reply]) -> TiingoStandIn:
        """Answers in order, one entry per request (an IndexError in the server past the end)."""
        queue = list(script)
        return cls(lambda _arrived: queue.pop(0))

    def __enter__(self) -> TiingoStandIn:
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


# ---------------------------------------------------------------- replies the tests build on


DROP = object()  # as a ``bar`` change: remove the field


def bar(day: date | str, close: float = 100.0, **changes: Any) -> dict[str, Any]:
    """A plausible Tiingo price row for ``day``; ``changes`` replace fields (``DROP`` removes one)."""
    out = {
        "date": day if isinstance(day, str) else f"{day.isoformat()}T00:00:00.000Z",
        "open": close - 1,
        "high": close + 1,
        "low": close - 2,
        "close": close,
        "volume": 1000,
        "adjOpen": close - 1,
        "adjHigh": close + 1,
        "adjLow": close - 2,
        "adjClose": close,
        "adjVolume": 1000.0,
        "divCash": 0.0,
        "splitFactor": 1.0,
    }
    out.update(changes)
    return {k: v for k, v in out.items() if v is not DROP}


def weekdays(start: date, end: date) -> list[date]:
    return [
        start + timedelta(n) for n in range((end - start).days + 1) if (start + timedelta(n)).weekday() < 5
    ]


class Replies:
    """An ``answer`` per ticker (``/tiingo/daily/<T>/prices``), whatever the dates asked; 404 otherwise."""

    def __init__(self) -> None:
        self.by_ticker: dict[str, Reply] = {}

    def __call__(self, arrived: Arrived) -> Reply:
        ticker = arrived.path.split("/")[3]
        return self.by_ticker.get(ticker, json_reply({"detail": f"Error: Ticker '{ticker}' not found"}, 404))
