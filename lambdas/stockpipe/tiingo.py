"""The Tiingo end-of-day HTTP client: typed errors, bounded retries, and a token that never leaks.

One client is shared by a thread pool (httpx.Client is thread-safe; its pool is sized by
``max_connections``). Every HTTP attempt first takes a slot from the optional RateLimiter, so a run
that keeps to the limiter never trips Tiingo's hourly quota. The token travels only in the
``Authorization`` header: never in URLs, messages, reprs or exception chains.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any

import httpx
import pyarrow as pa

from stockpipe.errors import (
    AuthenticationError,
    BadPayloadError,
    MonthlyLimitError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TiingoError,
    TransportError,
)
from stockpipe.logs import get_logger
from stockpipe.prices import rows_to_table
from stockpipe.ratelimit import RateLimiter
from stockpipe.secrets import resolve_token
from stockpipe.settings import DEFAULT_MAX_RETRIES, env_int
from stockpipe.tickers import normalize_ticker

DEFAULT_BASE_URL = "https://api.tiingo.com"

_log = get_logger("tiingo")
_DETAIL_CHARS = 200
# Tiingo answers its monthly symbol / bandwidth limits with HTTP 200 and a sentence, not a status.
_MONTHLY_MARKERS = ("symbol look up for this month", "monthly bandwidth allocation")
_NOT_JSON = object()


@dataclass
class RequestStats:
    """Counts for one call, one ticker or (``client.stats``) the whole client."""

    requests: int = 0  # HTTP attempts actually sent
    retries: int = 0  # attempts that were repeats after a retryable failure
    rate_limited: int = 0  # 429s and monthly-limit answers seen


@dataclass(frozen=True)
class TickerMetadata:
    ticker: str
    name: str | None
    start_date: date | None  # None when Tiingo has no prices for the symbol
    end_date: date | None


def client_from_env(
    env: Mapping[str, str], *, secrets_client: Any = None, max_connections: int = 32
) -> TiingoClient:
    """The client both Lambdas use: token from Secrets Manager (or the env), TIINGO_BASE_URL, and a
    client-side limit of TIINGO_REQUESTS_PER_HOUR (0 or unset: none). A Lambda never sleeps out the
    hourly quota: past TIINGO_MAX_LIMIT_WAIT_SECONDS (default 60) it stops and the next run goes on."""
    per_hour = env_int(env, "TIINGO_REQUESTS_PER_HOUR", 0)
    return TiingoClient(
        resolve_token(env, secrets_client=secrets_client),
        base_url=env.get("TIINGO_BASE_URL") or DEFAULT_BASE_URL,
        rate_limiter=RateLimiter.per_hour(per_hour) if per_hour else None,
        max_limiter_wait=env_int(env, "TIINGO_MAX_LIMIT_WAIT_SECONDS", 60),
        max_connections=max_connections,
    )


class TiingoClient:
    """Thread-safe Tiingo client; see the module docstring for the guarantees."""

    def __init__(
        self,
        token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 30.0,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        rate_limiter: RateLimiter | None = None,
        max_limiter_wait: float | None = None,
        max_connections: int = 32,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not isinstance(token, str) or not token.strip():
            raise ValueError("a Tiingo API token is required (set TIINGO_API_TOKEN or TIINGO_SECRET_ARN)")
        token = token.strip()
        if not token.isprintable() or any(ch.isspace() for ch in token):
            raise ValueError("the Tiingo API token contains whitespace or control characters")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self._token = token  # kept only to scrub it from any text we quote back; never sent elsewhere
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
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
            headers={
                "Authorization": f"Token {token}",
                "Accept": "application/json",
                "User-Agent": "stock-pipeline/0.1",
            },
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
    ) -> pa.Table:
        """Daily bars for [start, end] inclusive as a PRICE_SCHEMA table; no trading days -> empty table.

        ValueError (before any request) for a bad ticker or start > end.
        """
        symbol = normalize_ticker(ticker)
        if start > end:
            raise ValueError(f"{symbol}: start {start} is after end {end}")
        params = {"startDate": start.isoformat(), "endDate": end.isoformat()}
        rows = self._get_json(symbol, f"/tiingo/daily/{symbol}/prices", params, stats, expect=list)
        return _to_table(symbol, rows)

    def get_latest(self, ticker: str, *, stats: RequestStats | None = None) -> pa.Table:
        """The latest bar (Tiingo's no-date request) as a one-row table (empty if Tiingo has none)."""
        symbol = normalize_ticker(ticker)
        rows = self._get_json(symbol, f"/tiingo/daily/{symbol}/prices", None, stats, expect=list)
        return _to_table(symbol, rows)

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
            start_date=_parse_day(symbol, body.get("startDate"), "startDate"),
            end_date=_parse_day(symbol, body.get("endDate"), "endDate"),
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
        while True:
            outcome = self._attempt(symbol, path, params, stats, expect)
            if not isinstance(outcome, TiingoError):
                return outcome  # the parsed body
            error = outcome
            if not error.retryable or attempt >= self.max_retries:
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
        self, symbol: str, path: str, params: dict[str, str] | None, stats: RequestStats | None, expect: type
    ) -> Any:
        """Send once; return the parsed body, or the TiingoError to raise/retry (never raises httpx)."""
        if self.rate_limiter is not None:
            self.rate_limiter.acquire(self.max_limiter_wait)  # RateLimitError past max_limiter_wait
        self._count(stats, "requests")
        failure: str | None = None
        try:
            response = self._http.get(path, params=params)
        except httpx.TimeoutException as exc:
            failure = f"timed out ({type(exc).__name__})"
        except httpx.HTTPError as exc:  # ConnectError, ReadError, RemoteProtocolError, ...
            failure = f"connection failed ({type(exc).__name__})"
        if failure is not None:
            # Built outside the except block: no __context__ pointing at an httpx request with headers.
            return TransportError(f"Tiingo request for {symbol} {failure}")
        return self._interpret(symbol, response, stats, expect)

    def _interpret(
        self, symbol: str, response: httpx.Response, stats: RequestStats | None, expect: type
    ) -> Any:
        status = response.status_code
        where = f"Tiingo request for {symbol}: HTTP {status}"
        try:
            body = json.loads(response.content)
        except ValueError:
            body = _NOT_JSON
        if status == 200 and isinstance(body, expect) and not (isinstance(body, dict) and "detail" in body):
            return body  # the hot path: no second look at a large body
        detail = self._detail(response.text, body)
        if _is_monthly(detail):
            self._count(stats, "rate_limited")
            return MonthlyLimitError(f"{where}: monthly limit reached: {detail}")
        if status == 200:
            if body is _NOT_JSON:
                kind = response.headers.get("content-type", "unknown").split(";")[0]
                return BadPayloadError(f"{where}: body is not JSON ({kind}): {detail}")
            shape = "list" if expect is list else "object"
            return BadPayloadError(f"{where}: expected a JSON {shape}, got {type(body).__name__}: {detail}")
        if status in (401, 403):
            return AuthenticationError(f"{where}: authentication failed: {detail}")
        if status == 404:
            return NotFoundError(f"{where}: not found: {detail}")
        if status == 429:
            self._count(stats, "rate_limited")
            retry_after = _retry_after(response.headers.get("retry-after"))
            return RateLimitError(f"{where}: rate limited: {detail}", retry_after=retry_after)
        if status >= 500:
            return ServerError(f"{where}: server error: {detail}")
        return TiingoError(f"{where}: unexpected status: {detail}")

    def _detail(self, text: str, body: Any) -> str:
        """Tiingo's ``detail`` (or the raw text), printable only, short, and scrubbed of the token."""
        detail = body["detail"] if isinstance(body, dict) and isinstance(body.get("detail"), str) else text
        cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in detail[:1000]).split())
        cleaned = cleaned.replace(self._token, "***")
        if len(cleaned) > _DETAIL_CHARS:
            cleaned = cleaned[:_DETAIL_CHARS] + "..."
        return cleaned or "(empty body)"

    def _delay(self, attempt: int, error: TiingoError) -> float | None:
        """Full-jitter exponential backoff, or the server's Retry-After when it gave one."""
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return retry_after if retry_after <= self.backoff_max else None
        cap = min(self.backoff_max, self.backoff_base * (2**attempt))
        return self._random.uniform(0.0, cap)


def _to_table(symbol: str, rows: Any) -> pa.Table:
    try:
        return rows_to_table(rows)
    except BadPayloadError as exc:
        message = f"Tiingo prices for {symbol}: {exc}"
    raise BadPayloadError(message)


def _is_monthly(detail: str) -> bool:
    lowered = detail.lower()
    return any(marker in lowered for marker in _MONTHLY_MARKERS)


def _parse_day(symbol: str, value: Any, field: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            pass
    raise BadPayloadError(f"Tiingo metadata for {symbol}: malformed {field} {str(value)[:40]!r}")


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP-date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
