"""The Tiingo end-of-day HTTP client: typed errors, bounded retries, screened replies, a safe token.

One client is shared by a thread pool (httpx.Client is thread-safe; its pool is sized by
``max_connections``). Every HTTP attempt first takes a slot from the optional RateLimiter, so a run
that keeps to the limiter never trips Tiingo's hourly quota. The token travels only in the
``Authorization`` header: never in URLs, messages, reprs or exception chains; it comes from a
``TokenSource`` (re-read after its maximum age, and once at once when Tiingo refuses it).

Every price reply passes ``validation.screen``: invalid rows are quarantined (listed in
``PriceReply.rejected``), rows outside the requested range are counted and dropped. A reply is plain
Python (``validation.Screened``); the Arrow table is built on the storage side (``prices.reply_table``),
so the orchestrator, which asks only for metadata, imports httpx and JSON here and never pyarrow.

Where a failure happened decides what it costs::

    connect failed (DNS, refused, TLS, connect timeout)  NetworkError  not a request; slot given back
    connection lost after the request was sent           NetworkError  a request (Tiingo may count it)
    no answer in time                                     TransportError (timeout)
    an answer                                             tiingo_replies.interpret
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

from stockpipe.errors import (
    AuthenticationError,
    BadPayloadError,
    NetworkError,
    RateLimitError,
    TiingoError,
    TransportError,
    clean_message,
)
from stockpipe.logs import get_logger
from stockpipe.ratelimit import RateLimiter, Slot
from stockpipe.secrets import TokenSource, token_source_from_env
from stockpipe.settings import DEFAULT_MAX_RETRIES, DEFAULT_TIINGO_BASE_URL, TiingoSettings
from stockpipe.tickers import normalize_ticker
from stockpipe.tiingo_replies import interpret
from stockpipe.validation import DATE_RULE, Screened, parse_day, screen

DEFAULT_BASE_URL = DEFAULT_TIINGO_BASE_URL
# Tiingo unreachable is usually not a blip a long backoff fixes, and it stops the run: retry briefly.
DEFAULT_NETWORK_RETRIES = 2

_log = get_logger("tiingo")


@dataclass
class RequestStats:
    """Counts for one call, one ticker or (``client.stats``) the whole client."""

    requests: int = 0  # HTTP attempts that reached (or may have reached) Tiingo
    retries: int = 0  # attempts that were repeats after a retryable failure
    rate_limited: int = 0  # 429s and monthly-limit answers seen


@dataclass(frozen=True)
class TickerMetadata:
    ticker: str
    name: str | None
    start_date: date | None  # None when Tiingo has no prices for the symbol
    end_date: date | None


# A screened price reply: the storable rows (sorted, one per date) and what was left out (``rejected``,
# ``rejected_rows``, ``out_of_range_rows``); see ``validation``.
PriceReply = Screened


def client_from_env(
    env: Mapping[str, str], *, secrets_client: Any = None, max_connections: int = 32
) -> TiingoClient:
    """The client both Lambdas use (``TiingoSettings``): token from Secrets Manager (or the env), and a
    client-side limit of TIINGO_REQUESTS_PER_HOUR (0: none). A Lambda never sleeps out the hourly
    quota: past TIINGO_MAX_LIMIT_WAIT_SECONDS it stops and the next run goes on."""
    settings = TiingoSettings.from_env(env)
    tokens = token_source_from_env(
        env, max_age_minutes=settings.token_max_age_minutes, secrets_client=secrets_client
    )
    per_hour = settings.requests_per_hour
    return TiingoClient(
        tokens,
        base_url=settings.base_url,
        rate_limiter=RateLimiter.per_hour(per_hour) if per_hour else None,
        max_limiter_wait=settings.max_limit_wait_seconds,
        max_connections=max_connections,
    )


class TiingoClient:
    """Thread-safe Tiingo client; see the module docstring for the guarantees."""

    def __init__(
        self,
        token: str | TokenSource,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 30.0,
        max_retries: int = DEFAULT_MAX_RETRIES,
        network_retries: int = DEFAULT_NETWORK_RETRIES,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        rate_limiter: RateLimiter | None = None,
        max_limiter_wait: float | None = None,
        max_connections: int = 32,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._tokens = token if isinstance(token, TokenSource) else TokenSource.fixed(token)
        if max_retries < 0 or network_retries < 0:
            raise ValueError("max_retries and network_retries must be >= 0")
        self.base_url = base_url.rstrip("/")
        self.host = urlsplit(self.base_url).hostname or self.base_url
        self.max_retries = max_retries
        self.network_retries = network_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.rate_limiter = rate_limiter
        self.max_limiter_wait = max_limiter_wait  # None: wait as long as the limiter says
        self._sleep = sleep
        self._random = random.Random()
        self._stats_lock = threading.Lock()
        self.stats = RequestStats()
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Accept": "application/json", "User-Agent": "stock-pipeline/0.1"},
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"TiingoClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> TiingoClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---- public API --------------------------------------------------------------------------------

    def get_prices(
        self, ticker: str, start: date, end: date, *, stats: RequestStats | None = None
    ) -> PriceReply:
        """Daily bars for [start, end] inclusive, screened: rows outside it are never returned.

        ValueError (before any request) for a bad ticker or start > end.
        """
        symbol = normalize_ticker(ticker)
        if start > end:
            raise ValueError(f"{symbol}: start {start} is after end {end}")
        params = {"startDate": start.isoformat(), "endDate": end.isoformat()}
        rows = self._get_json(symbol, f"/tiingo/daily/{symbol}/prices", params, stats, expect=list)
        return _reply(symbol, rows, start, end)

    def get_latest(
        self, ticker: str, *, until: date | None = None, stats: RequestStats | None = None
    ) -> PriceReply:
        """The latest bar (Tiingo's no-date request), screened; a bar after ``until`` is out of range."""
        symbol = normalize_ticker(ticker)
        rows = self._get_json(symbol, f"/tiingo/daily/{symbol}/prices", None, stats, expect=list)
        return _reply(symbol, rows, None, until)

    def get_metadata(self, ticker: str, *, stats: RequestStats | None = None) -> TickerMetadata:
        """Name and the first/last dates Tiingo has prices for (what a backfill plan starts from)."""
        symbol = normalize_ticker(ticker)
        body = self._get_json(symbol, f"/tiingo/daily/{symbol}", None, stats, expect=dict)
        missing = [key for key in ("startDate", "endDate") if key not in body]
        if missing:
            raise BadPayloadError(f"Tiingo metadata for {symbol} without {' and '.join(missing)}")
        name = body.get("name")
        return TickerMetadata(
            ticker=symbol,
            name=name.strip() if isinstance(name, str) and name.strip() else None,
            start_date=_metadata_day(symbol, body, "startDate"),
            end_date=_metadata_day(symbol, body, "endDate"),
        )

    # ---- internals ---------------------------------------------------------------------------------

    def _count(self, stats: RequestStats | None, field: str) -> None:
        with self._stats_lock:  # also guards a caller's stats object shared across threads
            setattr(self.stats, field, getattr(self.stats, field) + 1)
            if stats is not None:
                setattr(stats, field, getattr(stats, field) + 1)

    def _get_json(
        self,
        symbol: str,
        path: str,
        params: dict[str, str] | None,
        stats: RequestStats | None,
        *,
        expect: type,
    ) -> Any:
        """One logical request: attempts with backoff until a result or a non-retryable error."""
        attempt = 0
        refreshed = False
        while True:
            token = self._tokens.current()
            outcome = self._attempt(symbol, path, params, stats, expect, token)
            if not isinstance(outcome, TiingoError):
                return outcome  # the parsed body
            error = outcome
            if isinstance(error, AuthenticationError) and not refreshed:
                refreshed = True  # a rotated secret: re-read once, and retry at once if it changed
                if self._tokens.refresh(token) != token:
                    self._count(stats, "retries")
                    continue
            limit = self.max_retries
            if isinstance(error, NetworkError):
                limit = min(limit, self.network_retries)
            if not error.retryable or attempt >= limit:
                raise error
            delay = self._delay(attempt, error)
            if delay is None:
                raise error  # Retry-After beyond backoff_max: waiting here is worse than failing now
            attempt += 1
            self._count(stats, "retries")
            _log.warning(
                "retrying Tiingo request",
                extra={
                    "ticker": symbol,
                    "error_kind": error.kind,
                    "attempt": attempt,
                    "delay_s": round(delay, 3),
                },
            )
            self._sleep(delay)

    def _attempt(
        self,
        symbol: str,
        path: str,
        params: dict[str, str] | None,
        stats: RequestStats | None,
        expect: type,
        token: str,
    ) -> Any:
        """Send once; return the parsed body, or the TiingoError to raise/retry (never raises httpx)."""
        slot: Slot | None = None
        if self.rate_limiter is not None:
            slot = self.rate_limiter.acquire(self.max_limiter_wait)  # RateLimitError past max wait
        failure: TiingoError | None = None
        sent = True
        try:
            response = self._http.get(path, params=params, headers={"Authorization": f"Token {token}"})
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            sent = False
            failure = NetworkError(f"cannot reach {self.host}: {_reason(exc)}")
        except httpx.TimeoutException as exc:
            failure = TransportError(f"Tiingo request for {symbol} timed out ({type(exc).__name__})")
        except httpx.HTTPError as exc:  # ReadError, WriteError, RemoteProtocolError: the connection broke
            failure = NetworkError(f"cannot reach {self.host}: connection lost ({_reason(exc)})")
        if not sent and slot is not None:
            self.rate_limiter.give_back(slot)  # type: ignore[union-attr]  # never left: not a request
        if sent:
            self._count(stats, "requests")
        if failure is not None:
            # Built outside the except block: no __context__ pointing at an httpx request with headers.
            return failure
        outcome = interpret(symbol, response, expect)
        if isinstance(outcome, RateLimitError):
            self._count(stats, "rate_limited")
        return outcome

    def _delay(self, attempt: int, error: TiingoError) -> float | None:
        """Full-jitter exponential backoff, or the server's Retry-After when it gave one."""
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return retry_after if retry_after <= self.backoff_max else None
        cap = min(self.backoff_max, self.backoff_base * (2**attempt))
        return self._random.uniform(0.0, cap)


def _reply(symbol: str, rows: Any, start: date | None, end: date | None) -> PriceReply:
    try:
        return screen(rows, start=start, end=end)
    except BadPayloadError as exc:
        message = f"Tiingo prices for {symbol}: {exc}"
    raise BadPayloadError(message)


def _metadata_day(symbol: str, body: dict[str, Any], field: str) -> date | None:
    value = body.get(field)
    if value is None or value == "":
        return None
    day = parse_day(value)
    if day is None:  # named by field and rule, never quoted: a reply can carry anything
        raise BadPayloadError(f"Tiingo metadata for {symbol}: {field} is {DATE_RULE}")
    return day


def _reason(exc: httpx.HTTPError) -> str:
    """The OS's or TLS library's words (``[Errno 111] Connection refused``), or the error's type."""
    return clean_message(str(exc), 120) or type(exc).__name__
