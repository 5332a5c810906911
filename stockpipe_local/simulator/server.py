"""The Tiingo HTTP facade over the synthetic market: routes, token auth, the quota and faults.

``TiingoSimulator.answer`` decides what one GET gets (a pure-ish function of the request, the market and
the fault plan); the HTTP handler only parses the request line, calls ``answer`` and writes the bytes.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
import time
from collections.abc import Mapping
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

from stockpipe_local.simulator.faults import (
    HOURLY_LIMIT_DETAIL,
    FaultPlan,
    Faults,
    Response,
    fault_response,
    json_response,
)
from stockpipe_local.simulator.market import Market

_PATH = re.compile(r"/tiingo/daily/([^/]+)(/prices)?/?")


class RequestRecord(NamedTuple):
    method: str
    path: str
    ticker: str | None
    params: dict[str, str]  # query parameters, never the token
    status: int  # 0 when the connection was reset without a response
    time: float  # time.monotonic() when the request arrived

    @property
    def kind(self) -> str:
        """ "prices" (ranged), "latest" (no dates), "metadata", or "other" for unknown paths."""
        match = _PATH.fullmatch(self.path)
        if match is None:
            return "other"
        if match.group(2) is None:
            return "metadata"
        return "prices" if ("startDate" in self.params or "endDate" in self.params) else "latest"


class TiingoSimulator:
    """A threaded loopback Tiingo. ``today`` and ``faults`` may be changed while it runs."""

    def __init__(
        self,
        *,
        token: str = "sim-token",  # noqa: S107 - the simulator's own dummy token
        today: date | None = None,
        tickers: Mapping[str, date] | None = None,
        generated_prefix: str | None = "SIM",
        quota: int | None = None,
        quota_window: float = 3600.0,
        faults: Faults | None = None,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token = token
        self.today: date = today or date.today()
        self.market = Market(tickers=tickers, generated_prefix=generated_prefix, seed=seed)
        self.plan = FaultPlan(faults=faults or Faults(), quota=quota, quota_window=quota_window, seed=seed)
        self.seed = seed
        self.slow_seconds = 5.0  # how long the "timeout" fault stalls before answering
        self.host = host
        self.port = port
        self.base_url = ""
        self.requests: list[RequestRecord] = []
        self._lock = threading.Lock()  # guards self.requests
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- settings that may change while serving ----------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self.plan.faults

    @property
    def quota(self) -> int | None:
        return self.plan.quota

    @quota.setter
    def quota(self, value: int | None) -> None:
        self.plan.quota = value

    @property
    def quota_window(self) -> float:
        return self.plan.quota_window

    @quota_window.setter
    def quota_window(self, value: float) -> None:
        self.plan.quota_window = value

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> TiingoSimulator:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self.host, self.port), _Handler, self)
        self._server = server
        host, port = server.server_address[:2]
        self.port = port
        self.base_url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="tiingo-simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open keep-alive connections and free the port."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes handlers sleeping for latency / the "timeout" fault
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=10)
        server.join_handlers(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> TiingoSimulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"TiingoSimulator(base_url={self.base_url!r}, today={self.today})"

    # ---- control ---------------------------------------------------------------------------------

    def inject(
        self, fault: str, count: int = 1, *, ticker: str | None = None, retry_after: float | None = None
    ) -> None:
        """The next `count` matching requests (any ticker when None) get `fault`, first injected first."""
        self.plan.inject(fault, count, ticker, retry_after)

    def add_event(self, ticker: str, day: date, *, split_factor: float = 1.0, div_cash: float = 0.0) -> None:
        """A new corporate action on a trading day; adj* of all earlier rows change, as on Tiingo."""
        self.market.add_event(ticker, day, split_factor=split_factor, div_cash=div_cash)

    def first_date(self, ticker: str) -> date:
        """The first trading date of the ticker's history (KeyError for unknown tickers)."""
        return self.market.first(self.market.known(ticker))

    def history(self, ticker: str, start: date, end: date) -> list[dict[str, Any]]:
        """Exactly the rows a ranged prices request for [start, end] gets (Tiingo key order)."""
        return self.market.rows(self.market.known(ticker), start, end, today=self.today)

    def count(self, *, ticker: str | None = None, status: int | None = None, kind: str | None = None) -> int:
        wanted = ticker.strip().upper() if ticker is not None else None
        return sum(
            1
            for r in self.records()
            if (wanted is None or r.ticker == wanted)
            and (status is None or r.status == status)
            and (kind is None or r.kind == kind)
        )

    def records(self, since: int = 0) -> list[RequestRecord]:
        """A copy of the recorded requests from index ``since`` on."""
        with self._lock:
            return list(self.requests[since:])

    def reset_stats(self) -> None:
        """Forget recorded requests (the quota counter is server state and is kept)."""
        with self._lock:
            self.requests.clear()

    # ---- one request (called from handler threads) -----------------------------------------------

    def answer(self, target: str, authorization: str | None) -> Response:
        """What a GET of ``target`` (path and query) gets; recorded, with latency and stalls applied.

        A response whose ``action`` is "reset" must be answered by resetting the connection.
        """
        arrived = time.monotonic()
        parts = urlsplit(target)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        query_token = params.pop("token", None)
        match = _PATH.fullmatch(parts.path)
        symbol = unquote(match.group(1)).strip().upper() if match else None
        response = self._respond(match, params, _token(authorization) or query_token, symbol)
        with self._lock:
            self.requests.append(RequestRecord("GET", parts.path, symbol, params, response.status, arrived))
        self._pause(self.faults.latency)
        if response.action == "slow":
            self._pause(self.slow_seconds)
        return response

    def _respond(
        self, match: re.Match[str] | None, params: dict[str, str], auth: str | None, symbol: str | None
    ) -> Response:
        if match is None or symbol is None:
            return json_response(404, {"detail": "Not found."})
        if not auth:
            return json_response(403, {"detail": "Please supply a token"})
        if auth != self.token:
            return json_response(401, {"detail": "Invalid token."})
        if self.plan.over_quota():
            return json_response(429, {"detail": HOURLY_LIMIT_DETAIL})
        float_volume = False
        action = None
        injection = self.plan.take(symbol)
        if injection is not None:
            fault = injection.fault
            if fault == "float_volume":
                float_volume = True
            elif fault == "timeout":
                action = "slow"
            elif fault == "reset":
                return Response(0, action="reset")
            elif fault not in {"truncated"}:
                return fault_response(fault, symbol, injection.retry_after)
        if self.plan.error_roll():
            return fault_response("500", symbol, None)
        if not self.market.is_known(symbol):
            return json_response(404, {"detail": f"Error: Ticker '{symbol}' not found"})
        response = self._data(symbol, match.group(2) is not None, params, float_volume)
        if injection is not None and injection.fault == "truncated":
            response.body = response.body[: max(1, len(response.body) // 2)]
        response.action = action
        return response

    def _data(self, symbol: str, prices: bool, params: dict[str, str], float_volume: bool) -> Response:
        today = self.today
        if not prices:
            return json_response(200, self.market.metadata(symbol, today=today))
        if "startDate" not in params and "endDate" not in params:
            return json_response(200, self.market.latest(symbol, today=today, float_volume=float_volume))
        try:
            start = date.fromisoformat(params["startDate"]) if "startDate" in params else date.min
            end = date.fromisoformat(params["endDate"]) if "endDate" in params else today
        except ValueError:
            return json_response(400, {"detail": "Error: startDate and endDate must be YYYY-MM-DD"})
        rows = self.market.rows(symbol, start, end, today=today, float_volume=float_volume)
        if params.get("sort") == "-date":
            rows.reverse()
        return json_response(200, rows)

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() closes connections itself, then joins handlers with a timeout
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], sim: TiingoSimulator
    ) -> None:
        self.sim = sim
        self._connections: dict[socket.socket, threading.Thread | None] = {}
        self._conn_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        with self._conn_lock:
            self._connections[request] = thread
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that hangs up mid-request is normal here, not a traceback on stderr."""

    def close_connections(self) -> None:
        with self._conn_lock:
            sockets = list(self._connections)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def join_handlers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._conn_lock:
            threads = [t for t in self._connections.values() if t is not None]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TiingoSimulator/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are dropped after this
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: benchmarks make tens of thousands of requests."""

    def do_GET(self) -> None:
        response = self.server.sim.answer(self.path, self.headers.get("Authorization"))
        if response.action == "reset":
            self._reset()
            return
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers:
                self.send_header(name, value)
            # One write for head and body: two small writes meet Nagle + delayed ACK (~40 ms each).
            self._headers_buffer.append(b"\r\n" + response.body)
            self.flush_headers()
        except OSError:
            self.close_connection = True

    def _reset(self) -> None:
        """Close the socket with RST and no response at all."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    return value.strip() if scheme.lower() == "token" else None
