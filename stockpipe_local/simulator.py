"""A Tiingo-compatible end-of-day HTTP server for tests, benchmarks and offline `make run`.

It behaves like the facts in ../shared/reference/tiingo-api.md: ranged and latest-bar price requests,
metadata, token auth, 404s, an hourly clock-aligned quota, plus injectable faults (429s, monthly-limit
texts, 5xx, truncated/HTML/wrong-shape bodies, slow answers, connection resets). Prices are a pure
function of (seed, ticker, day), so any request costs O(rows requested) and nothing is stored per row;
corporate actions back-adjust the ``adj*`` columns of the whole history, as Tiingo does.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

from stockpipe.calendar import is_trading_day, trading_days
from stockpipe.tickers import normalize_ticker

DEFAULT_TICKERS: dict[str, date] = {
    "AAPL": date(1980, 12, 12),
    "MSFT": date(1986, 3, 13),
    "GOOGL": date(2004, 8, 19),
    "AMZN": date(1997, 5, 15),
    "NVDA": date(1999, 1, 22),
    "META": date(2012, 5, 18),
    "TSLA": date(2010, 6, 29),
    "BRK-B": date(1996, 5, 9),
    "JPM": date(1983, 12, 30),
    "SPY": date(1993, 1, 29),
    "QQQ": date(1999, 3, 10),
    "IBM": date(1962, 1, 2),
    "KO": date(1962, 1, 2),
    "XOM": date(1970, 1, 2),
    "WMT": date(1972, 8, 25),
    "INTC": date(1980, 3, 17),
    "AMD": date(1980, 3, 17),
    "NFLX": date(2002, 5, 23),
    "V": date(2008, 3, 19),
}

_NAMES: dict[str, tuple[str, str]] = {
    "AAPL": ("Apple Inc", "NASDAQ"),
    "MSFT": ("Microsoft Corp", "NASDAQ"),
    "GOOGL": ("Alphabet Inc - Class A", "NASDAQ"),
    "AMZN": ("Amazon.com Inc", "NASDAQ"),
    "NVDA": ("NVIDIA Corp", "NASDAQ"),
    "META": ("Meta Platforms Inc", "NASDAQ"),
    "TSLA": ("Tesla Inc", "NASDAQ"),
    "BRK-B": ("Berkshire Hathaway Inc - Class B", "NYSE"),
    "JPM": ("JPMorgan Chase & Co", "NYSE"),
    "SPY": ("SPDR S&P 500 ETF Trust", "NYSE ARCA"),
    "QQQ": ("Invesco QQQ Trust", "NASDAQ"),
    "IBM": ("International Business Machines Corp", "NYSE"),
    "KO": ("Coca-Cola Co", "NYSE"),
    "XOM": ("Exxon Mobil Corp", "NYSE"),
    "WMT": ("Walmart Inc", "NYSE"),
    "INTC": ("Intel Corp", "NASDAQ"),
    "AMD": ("Advanced Micro Devices Inc", "NASDAQ"),
    "NFLX": ("Netflix Inc", "NASDAQ"),
    "V": ("Visa Inc", "NYSE"),
}

# (has splits, pays dividends) for the well-known symbols, so tests and demos see both kinds of event;
# any other ticker decides from its hash.
_ACTIONS: dict[str, tuple[bool, bool]] = {
    "AAPL": (True, True),
    "MSFT": (True, True),
    "GOOGL": (True, False),
    "AMZN": (True, False),
    "NVDA": (True, True),
    "META": (False, True),
    "TSLA": (True, False),
    "BRK-B": (True, False),
    "JPM": (True, True),
    "SPY": (False, True),
}

GENERATED_FIRST_DATE = date(2000, 1, 3)

HOURLY_LIMIT_DETAIL = (
    "Error: You have run over your hourly request allocation. Please upgrade at "
    "https://api.tiingo.com/pricing to have your limits increased."
)
MONTHLY_SYMBOL_TEXT = (
    "You have run over your 500 symbol look up for this month. Please upgrade at "
    "https://api.tiingo.com/pricing to have your limits increased."
)
BANDWIDTH_TEXT = (
    "Error: You have run over your monthly bandwidth allocation. Please upgrade at "
    "https://api.tiingo.com/pricing to have your limits increased."
)
_HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>Tiingo - Error</title></head>"
    "<body><h1>Something went wrong</h1><p>Please try again later.</p></body></html>"
)

FAULTS = frozenset(
    {
        "429",
        "monthly_limit",
        "bandwidth",
        "500",
        "502",
        "503",
        "truncated",
        "html",
        "not_json_shape",
        "empty",
        "timeout",
        "reset",
        "401",
        "403",
        "float_volume",
    }
)

# Keys of ranged rows, in the order Tiingo sends them (see the reference); latest bars use sorted keys.
ROW_KEYS = (
    "date",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "adjOpen",
    "adjHigh",
    "adjLow",
    "adjClose",
    "adjVolume",
    "divCash",
    "splitFactor",
)

_PATH = re.compile(r"/tiingo/daily/([^/]+)(/prices)?/?")
_EVENT_CACHE_SIZE = 4096
_SPLIT_FACTORS = (2.0, 2.0, 3.0, 4.0, 1.5)


@dataclass
class Faults:
    """Background faults; mutable while the server runs (benchmarks turn latency up and down)."""

    latency: float = 0.0  # seconds added to every response
    error_rate: float = 0.0  # probability of an HTTP 500 per request (seeded RNG -> deterministic)


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


@dataclass
class _Injection:
    fault: str
    remaining: int
    ticker: str | None
    retry_after: float | None


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    action: str | None = None  # "reset" or "slow"


@dataclass(frozen=True)
class _Params:
    """Per-ticker shape of the synthetic series, derived from (seed, ticker) only."""

    first: date
    p0: float
    growth: float
    amplitude: float
    period: float
    phase: float
    splits: tuple[tuple[date, float], ...]  # built-in splits (any date; only those <= today apply)
    dividend_months: tuple[int, ...]  # empty when the ticker pays no dividends
    quarterly_yield: float
    volume_base: float
    day_hash: Any  # blake2b already fed with (seed, ticker); see _day_uniforms


def _uniforms(*parts: object, n: int = 5) -> tuple[float, ...]:
    """n deterministic floats in [0, 1) from a stable hash (Python's hash() is salted per process)."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=4 * n).digest()
    return tuple(v / 4294967296.0 for v in struct.unpack(f"<{n}I", digest))


_DAY = struct.Struct("<i")
_FIVE = struct.Struct("<5I")


def _day_uniforms(prefix: Any, ordinal: int) -> tuple[float, ...]:
    """Five floats for one day; `prefix` is a pre-fed blake2b of (seed, ticker), copied per day (fast)."""
    h = prefix.copy()
    h.update(_DAY.pack(ordinal))
    return tuple(v / 4294967296.0 for v in _FIVE.unpack(h.digest()))


def _next_trading_day(day: date) -> date:
    while not is_trading_day(day):
        day += timedelta(days=1)
    return day


def _previous_trading_day(day: date) -> date:
    day -= timedelta(days=1)
    while not is_trading_day(day):
        day -= timedelta(days=1)
    return day


@lru_cache(maxsize=65536)
def _params(seed: int, ticker: str, first: date) -> _Params:
    u = _uniforms(seed, ticker, "params", n=12)
    first_day = _next_trading_day(first)
    splits: list[tuple[date, float]] = []
    has_splits, has_dividends = _ACTIONS.get(ticker, (u[5] < 0.5, u[7] < 0.6))
    if has_splits:
        interval = 5.0 + 4.0 * u[6]  # years between splits
        for k in range(1, 30):
            day = first_day + timedelta(days=round(k * interval * 365.25))
            if day.year > 2100:
                break
            factor = _SPLIT_FACTORS[int(_uniforms(seed, ticker, "split", k, n=1)[0] * len(_SPLIT_FACTORS))]
            splits.append((_next_trading_day(day), factor))
    months: tuple[int, ...] = ()
    if has_dividends:
        m0 = 1 + int(u[8] * 3)
        months = (m0, m0 + 3, m0 + 6, m0 + 9)
    return _Params(
        first=first_day,
        p0=15.0 + 135.0 * u[0],
        growth=0.14 * u[1],
        amplitude=0.05 + 0.2 * u[2],
        period=2.0 + 4.0 * u[3],
        phase=2 * math.pi * u[4],
        splits=tuple(splits),
        dividend_months=months,
        quarterly_yield=0.002 + 0.006 * u[9],
        volume_base=1e5 + 5e7 * u[10] ** 2,
        day_hash=hashlib.blake2b(f"{seed}|{ticker}|day|".encode(), digest_size=20),
    )


def _raw_bar(seed: int, ticker: str, p: _Params, day: date) -> tuple[float, float, float, float, int]:
    """Unadjusted (open, high, low, close, volume): a pure function of (seed, ticker, day)."""
    years = (day.toordinal() - p.first.toordinal()) / 365.25
    level = (
        p.p0
        * math.exp(p.growth * years)
        * (1.0 + p.amplitude * math.sin(2 * math.pi * years / p.period + p.phase))
    )
    for split_day, factor in p.splits:
        if split_day > day:
            break
        level /= factor  # the share price drops on each split; the company's value does not
    level = max(level, 1.0)
    u = _day_uniforms(p.day_hash, day.toordinal())
    close = round(level * (1.0 + 0.03 * (u[0] - 0.5)), 2)
    open_ = round(level * (1.0 + 0.02 * (u[1] - 0.5)), 2)
    # round() is monotone, so high >= max(open, close) >= min(open, close) >= low survives rounding.
    high = round(max(open_, close) * (1.0 + 0.015 * u[2]), 2)
    low = round(min(open_, close) * (1.0 - 0.015 * u[3]), 2)
    volume = int(p.volume_base * (0.5 + u[4]))
    return open_, high, low, close, volume


class _Adjustments(NamedTuple):
    """Corporate actions up to `today` and the suffix products that back-adjust earlier rows."""

    events: dict[date, tuple[float, float]]  # day -> (split factor, dividend cash)
    days: list[date]  # sorted event days
    price_after: list[float]  # price_after[i] = product of price multipliers of events[i:]
    volume_after: list[float]  # volume_after[i] = product of split factors of events[i:]


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
        if quota is not None and quota < 0:
            raise ValueError("quota must be >= 0 or None")
        if quota_window <= 0:
            raise ValueError("quota_window must be positive seconds")
        self.token = token
        self.today: date = today or date.today()
        self._tickers = {
            normalize_ticker(t): d for t, d in (DEFAULT_TICKERS if tickers is None else tickers).items()
        }
        self._generated = (
            re.compile(re.escape(generated_prefix.upper()) + r"\d+") if generated_prefix else None
        )
        self.quota = quota
        self.quota_window = quota_window
        self.faults = faults or Faults()
        self.seed = seed
        self.slow_seconds = 5.0  # how long the "timeout" fault stalls before answering
        self.host = host
        self.port = port
        self.base_url = ""
        self.requests: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._injections: list[_Injection] = []
        self._extra_events: dict[str, dict[date, tuple[float, float]]] = {}
        self._events_version = 0
        self._adjust_cache: OrderedDict[tuple[str, date, int], _Adjustments] = OrderedDict()
        self._quota_slot: tuple[int, int] = (-1, 0)  # (window index, requests counted in it)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> TiingoSimulator:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self.host, self.port), _Handler)
        server.sim = self
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
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose from {sorted(FAULTS)}")
        if count < 1:
            raise ValueError("count must be >= 1")
        wanted = ticker.strip().upper() if ticker is not None else None
        with self._lock:
            self._injections.append(_Injection(fault, count, wanted, retry_after))

    def add_event(self, ticker: str, day: date, *, split_factor: float = 1.0, div_cash: float = 0.0) -> None:
        """A new corporate action on a trading day; adj* of all earlier rows change, as on Tiingo."""
        symbol = self._known(ticker)
        if not is_trading_day(day):
            raise ValueError(f"{day} is not a trading day")
        if not split_factor > 0 or div_cash < 0:
            raise ValueError("split_factor must be > 0 and div_cash >= 0")
        with self._lock:
            events = self._extra_events.setdefault(symbol, {})
            split, cash = events.get(day, (1.0, 0.0))
            events[day] = (split * split_factor, cash + div_cash)
            self._events_version += 1
            self._adjust_cache.clear()

    def first_date(self, ticker: str) -> date:
        """The first trading date of the ticker's history (KeyError for unknown tickers)."""
        symbol = self._known(ticker)
        return self._first(symbol)

    def history(self, ticker: str, start: date, end: date) -> list[dict[str, Any]]:
        """Exactly the rows a ranged prices request for [start, end] gets (Tiingo key order)."""
        return self._rows(self._known(ticker), start, end)

    def count(self, *, ticker: str | None = None, status: int | None = None, kind: str | None = None) -> int:
        wanted = ticker.strip().upper() if ticker is not None else None
        with self._lock:
            records = list(self.requests)
        return sum(
            1
            for r in records
            if (wanted is None or r.ticker == wanted)
            and (status is None or r.status == status)
            and (kind is None or r.kind == kind)
        )

    def reset_stats(self) -> None:
        """Forget recorded requests (the quota counter is server state and is kept)."""
        with self._lock:
            self.requests.clear()

    # ---- data ------------------------------------------------------------------------------------

    def _known(self, ticker: str) -> str:
        symbol = normalize_ticker(ticker)
        if not self._is_known(symbol):
            raise KeyError(f"unknown simulated ticker {symbol!r}")
        return symbol

    def _is_known(self, symbol: str) -> bool:
        return symbol in self._tickers or bool(self._generated and self._generated.fullmatch(symbol))

    def _first(self, symbol: str) -> date:
        return self._tickers.get(symbol, GENERATED_FIRST_DATE)

    def _adjustments(self, symbol: str, today: date) -> _Adjustments:
        with self._lock:
            key = (symbol, today, self._events_version)
            cached = self._adjust_cache.get(key)
            if cached is not None:
                self._adjust_cache.move_to_end(key)
                return cached
            extra = dict(self._extra_events.get(symbol, {}))
        p = _params(self.seed, symbol, self._first(symbol))
        events: dict[date, tuple[float, float]] = {}
        for day, factor in p.splits:
            if day <= today:
                events[day] = (factor, 0.0)
        for year in range(p.first.year + 1, today.year + 1):
            for month in p.dividend_months:
                day = _next_trading_day(date(year, month, 10))
                if day > today:
                    break
                prev_close = _raw_bar(self.seed, symbol, p, _previous_trading_day(day))[3]
                split, _ = events.get(day, (1.0, 0.0))
                events[day] = (split, round(prev_close * p.quarterly_yield, 4))
        for day, (split, cash) in extra.items():
            if p.first <= day <= today:
                old_split, old_cash = events.get(day, (1.0, 0.0))
                events[day] = (old_split * split, old_cash + cash)
        days = sorted(events)
        price_after = [1.0] * (len(days) + 1)
        volume_after = [1.0] * (len(days) + 1)
        for i in range(len(days) - 1, -1, -1):
            split, cash = events[days[i]]
            multiplier = 1.0 / split
            if cash and days[i] > p.first:
                # CRSP-style: the dividend's share of the (split-adjusted) previous close.
                prev_close = _raw_bar(self.seed, symbol, p, _previous_trading_day(days[i]))[3] / split
                multiplier *= max(1.0 - cash / prev_close, 0.01)
            price_after[i] = price_after[i + 1] * multiplier
            volume_after[i] = volume_after[i + 1] * split
        result = _Adjustments(events, days, price_after, volume_after)
        with self._lock:
            self._adjust_cache[key] = result
            while len(self._adjust_cache) > _EVENT_CACHE_SIZE:
                self._adjust_cache.popitem(last=False)
        return result

    def _rows(
        self, symbol: str, start: date, end: date, *, float_volume: bool = False
    ) -> list[dict[str, Any]]:
        today = self.today
        p = _params(self.seed, symbol, self._first(symbol))
        start, end = max(start, p.first), min(end, today)
        if start > end:
            return []
        adj = self._adjustments(symbol, today)
        index = bisect_right(adj.days, start)
        rows: list[dict[str, Any]] = []
        for day in trading_days(start, end):
            while index < len(adj.days) and adj.days[index] <= day:
                index += 1
            open_, high, low, close, volume = _raw_bar(self.seed, symbol, p, day)
            m = adj.price_after[index]
            split, cash = adj.events.get(day, (1.0, 0.0))
            rows.append(
                {
                    "date": f"{day.isoformat()}T00:00:00.000Z",
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": float(volume) if float_volume else volume,
                    "adjOpen": open_ * m,
                    "adjHigh": high * m,
                    "adjLow": low * m,
                    "adjClose": close * m,
                    "adjVolume": volume * adj.volume_after[index],
                    "divCash": cash,
                    "splitFactor": split,
                }
            )
        return rows

    def _latest(self, symbol: str, *, float_volume: bool = False) -> list[dict[str, Any]]:
        p = _params(self.seed, symbol, self._first(symbol))
        if self.today < p.first:
            return []
        day = self.today if is_trading_day(self.today) else _previous_trading_day(self.today)
        rows = self._rows(symbol, day, day, float_volume=float_volume)
        for row in rows:
            row["date"] = f"{row['date'][:10]}T00:00:00+00:00"
        return [dict(sorted(row.items())) for row in rows]

    def _metadata(self, symbol: str) -> dict[str, Any]:
        p = _params(self.seed, symbol, self._first(symbol))
        name, exchange = _NAMES.get(symbol, (f"{symbol} Simulated Corp", "NYSE"))
        has_data = p.first <= self.today
        last = self.today if is_trading_day(self.today) else _previous_trading_day(self.today)
        return {
            "ticker": symbol.lower(),
            "name": name,
            "exchangeCode": exchange,
            "description": f"{name} (simulated by stock-pipeline's Tiingo simulator).",
            "startDate": p.first.isoformat() if has_data else None,
            "endDate": last.isoformat() if has_data else None,
        }

    # ---- request handling (called from handler threads) ------------------------------------------

    def _take_injection(self, symbol: str | None) -> _Injection | None:
        with self._lock:
            for injection in self._injections:
                if injection.ticker is None or injection.ticker == symbol:
                    injection.remaining -= 1
                    if injection.remaining <= 0:
                        self._injections.remove(injection)
                    return injection
        return None

    def _over_quota(self) -> bool:
        if self.quota is None:
            return False
        window = math.floor(time.time() / self.quota_window)
        with self._lock:
            index, used = self._quota_slot
            used = used + 1 if index == window else 1
            self._quota_slot = (window, used)
        return used > self.quota

    def _error_roll(self) -> bool:
        rate = self.faults.error_rate
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def _respond(self, path: str, params: dict[str, str], auth: str | None, symbol: str | None) -> _Response:
        match = _PATH.fullmatch(path)
        if match is None or symbol is None:
            return _json(404, {"detail": "Not found."})
        if not auth:
            return _json(403, {"detail": "Please supply a token"})
        if auth != self.token:
            return _json(401, {"detail": "Invalid token."})
        if self._over_quota():
            return _json(429, {"detail": HOURLY_LIMIT_DETAIL})
        float_volume = False
        action = None
        injection = self._take_injection(symbol)
        if injection is not None:
            fault = injection.fault
            if fault == "float_volume":
                float_volume = True
            elif fault == "timeout":
                action = "slow"
            elif fault == "reset":
                return _Response(0, action="reset")
            elif fault not in {"truncated"}:
                return _fault_response(fault, symbol, injection.retry_after)
        if self._error_roll():
            return _fault_response("500", symbol, None)
        if not self._is_known(symbol):
            return _json(404, {"detail": f"Error: Ticker '{symbol}' not found"})
        if match.group(2) is None:
            response = _json(200, self._metadata(symbol))
        elif "startDate" in params or "endDate" in params:
            try:
                start = date.fromisoformat(params["startDate"]) if "startDate" in params else date.min
                end = date.fromisoformat(params["endDate"]) if "endDate" in params else self.today
            except ValueError:
                return _json(400, {"detail": "Error: startDate and endDate must be YYYY-MM-DD"})
            rows = self._rows(symbol, start, end, float_volume=float_volume)
            if params.get("sort") == "-date":
                rows.reverse()
            response = _json(200, rows)
        else:
            response = _json(200, self._latest(symbol, float_volume=float_volume))
        if injection is not None and injection.fault == "truncated":
            response.body = response.body[: max(1, len(response.body) // 2)]
        response.action = action
        return response

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


def _json(status: int, payload: Any) -> _Response:
    return _Response(status, json.dumps(payload, separators=(",", ":")).encode())


def _fault_response(fault: str, symbol: str, retry_after: float | None) -> _Response:
    if fault == "429":
        headers = (("Retry-After", f"{retry_after:g}"),) if retry_after is not None else ()
        return _Response(429, _json(429, {"detail": HOURLY_LIMIT_DETAIL}).body, headers=headers)
    if fault == "monthly_limit":
        return _Response(200, MONTHLY_SYMBOL_TEXT.encode(), "text/plain")
    if fault == "bandwidth":
        return _Response(200, BANDWIDTH_TEXT.encode(), "text/plain")
    if fault == "500":
        return _Response(500, b"<h1>Server Error (500)</h1>", "text/html")
    if fault in {"502", "503"}:
        reason = "Bad Gateway" if fault == "502" else "Service Temporarily Unavailable"
        page = (
            f"<html><head><title>{fault} {reason}</title></head><body><h1>{fault} {reason}</h1></body></html>"
        )
        return _Response(int(fault), page.encode(), "text/html")
    if fault == "html":
        return _Response(200, _HTML_PAGE.encode(), "text/html")
    if fault == "not_json_shape":
        return _json(200, {"ticker": symbol.lower(), "error": "unexpected response shape"})
    if fault == "empty":
        return _json(200, [])
    if fault == "401":
        return _json(401, {"detail": "Invalid token."})
    if fault == "403":
        return _json(403, {"detail": "Please supply a token"})
    raise AssertionError(f"unhandled fault {fault}")  # pragma: no cover - FAULTS and this stay in sync


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() closes connections itself, then joins handlers with a timeout
    request_queue_size = 128
    sim: TiingoSimulator

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
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
        sim = self.server.sim
        arrived = time.monotonic()
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        query_token = params.pop("token", None)
        match = _PATH.fullmatch(parts.path)
        symbol = unquote(match.group(1)).strip().upper() if match else None
        response = sim._respond(
            parts.path, params, _token(self.headers.get("Authorization")) or query_token, symbol
        )
        sim._record(RequestRecord("GET", parts.path, symbol, params, response.status, arrived))
        sim._wait(sim.faults.latency)
        if response.action == "reset":
            self._reset()
            return
        if response.action == "slow":
            sim._wait(sim.slow_seconds)
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


def main(argv: list[str] | None = None) -> int:
    """Serve a simulator until Ctrl-C (or SIGTERM); prints the base URL first, on its own line."""
    parser = argparse.ArgumentParser(
        prog="python -m stockpipe_local.simulator", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--token", default="sim-token", help="the token clients must send")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every response")
    parser.add_argument("--error-rate", type=float, default=0.0, help="probability of an HTTP 500")
    parser.add_argument("--quota", type=int, default=None, help="requests per quota window (default: none)")
    parser.add_argument("--quota-window", type=float, default=3600.0, help="seconds, clock-aligned")
    parser.add_argument("--today", type=date.fromisoformat, default=None, help="YYYY-MM-DD (default: today)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sim = TiingoSimulator(
        token=args.token,
        today=args.today,
        quota=args.quota,
        quota_window=args.quota_window,
        faults=Faults(latency=args.latency, error_rate=args.error_rate),
        seed=args.seed,
        host=args.host,
        port=args.port,
    )
    done = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: done.set())
    with sim:
        print(sim.base_url, flush=True)
        print(f"Tiingo simulator serving (today={sim.today}); Ctrl-C to stop", file=sys.stderr, flush=True)
        try:
            while not done.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
