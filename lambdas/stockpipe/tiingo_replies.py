"""What one Tiingo HTTP answer means: the parsed body, or the TiingoError to raise or retry.

Pure functions over a status, headers and a body, apart from the client's retry loop. Messages quote
Tiingo's own explanation of an error (its ``detail``, an error page or a plain-text notice) only after
the one scrub (``errors.scrub`` on the whole text, then cut), and never quote anything that claims to
be data (a JSON body, whole or broken).
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final

import httpx

from stockpipe.errors import (
    AuthenticationError,
    BadPayloadError,
    MonthlyLimitError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TiingoError,
    clean_message,
    scrub,
)
from stockpipe.validation import parse_json

DETAIL_CHARS: Final = 200
# Tiingo answers its monthly symbol / bandwidth limits with HTTP 200 and a sentence, not a status.
_MONTHLY_MARKERS: Final = ("symbol look up for this month", "monthly bandwidth allocation")
_NOT_JSON: Final = object()


def interpret(symbol: str, response: httpx.Response, expect: type) -> Any:
    """The parsed body when it is the ``expect`` shape Tiingo answers with, else the error it means."""
    status = response.status_code
    where = f"Tiingo request for {symbol}: HTTP {status}"
    try:
        body = parse_json(response.content)
    except ValueError:
        body = _NOT_JSON
    if status == 200 and isinstance(body, expect) and not (isinstance(body, dict) and "detail" in body):
        return body  # the hot path: no second look at a large body
    detail = _detail(response, body)
    if _is_monthly(detail):
        return MonthlyLimitError(f"{where}: monthly limit reached: {detail}")
    if status == 200:
        if body is _NOT_JSON:
            kind = clean_message(response.headers.get("content-type", "unknown").split(";")[0], 60)
            if "json" in kind.lower():  # broken data (e.g. cut off): never quoted, it is data
                return BadPayloadError(f"{where}: body is not JSON ({kind}, {len(response.content)} bytes)")
            return BadPayloadError(f"{where}: body is not JSON ({kind}): {detail}")  # an error page
        if isinstance(body, dict) and isinstance(body.get("detail"), str):
            return BadPayloadError(f"{where}: Tiingo says: {detail}")  # its explanation, not data
        shape = "list" if expect is list else "object"
        # A JSON 200 of the wrong shape is data, not an explanation: named by type, never quoted.
        return BadPayloadError(f"{where}: expected a JSON {shape}, got {type(body).__name__}")
    if status in (401, 403):
        return AuthenticationError(f"{where}: authentication failed: {detail}")
    if status == 404:
        return NotFoundError(f"{where}: not found: {detail}")
    if status == 429:
        retry_after = _retry_after(response.headers.get("retry-after"))
        return RateLimitError(f"{where}: rate limited: {detail}", retry_after=retry_after)
    if status >= 500:
        return ServerError(f"{where}: server error: {detail}")
    return TiingoError(f"{where}: unexpected status: {detail}")


def _detail(response: httpx.Response, body: Any) -> str:
    """Tiingo's ``detail`` (or the raw text): scrubbed of every secret BEFORE it is cut, printable, short."""
    detail = body["detail"] if isinstance(body, dict) and isinstance(body.get("detail"), str) else None
    text = scrub(response.text if detail is None else detail)  # whole: a cut token would leak its prefix
    # Bounded before the character-wise cleaning (an error page can be megabytes); the token is gone.
    return clean_message(text[: 10 * DETAIL_CHARS], DETAIL_CHARS) or "(empty body)"


def _is_monthly(detail: str) -> bool:
    lowered = detail.lower()
    return any(marker in lowered for marker in _MONTHLY_MARKERS)


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP-date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN: unreadable
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
