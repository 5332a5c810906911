"""One failure vocabulary: the error tree, the kinds summaries record, the rules, and the one scrub.

Callers react by kind, never by parsing messages. Every error carries a ``kind`` (a ``FailureKind``);
summaries, logs, ``progress.json`` and the CLI record that kind plus a message that went through
``scrub`` (the one exit for text: see below)::

    StockpipeError                          kind
    ├── TiingoError                         tiingo          anything else Tiingo answered
    │   ├── AuthenticationError             auth            401/403: bad or missing token
    │   ├── NotFoundError                   not_found       404: unknown, delisted or renamed ticker
    │   ├── RateLimitError                  rate_limited    429 hourly allocation (retryable)
    │   │   └── MonthlyLimitError           rate_limited    monthly symbols/bandwidth (not retryable)
    │   ├── ServerError                     server          5xx
    │   ├── BadPayloadError                 bad_payload     a 200 that is not valid data
    │   ├── TransportError                  timeout         the request timed out
    │   └── NetworkError                    network         DNS, refused, reset, TLS, connect timeout
    ├── StoreError                          store           a stored object cannot be read or written
    │   ├── ContentionError                 store           a compare-and-swap write lost every race
    │   └── PreconditionFailed              conflict        a conditional write lost the race
    └── SkippedError                        skipped         not attempted: the run stopped first

Kinds that are not exceptions of this module: ``empty`` (Tiingo answered ``[]`` for trading days),
the orchestrator's invocation failures (``invoke``, ``invalid_event``, ``function_error``,
``bad_summary``) and ``internal`` (a bug, recorded rather than fatal).

Secrets: the token is registered once (``register_secret``) where it is resolved, and ``scrub`` removes
it, in any letter case and in its ``Token <...>`` form, from any text *before* that text is cut
(a token that straddles a cut would otherwise leak its prefix). Every message that leaves the process
goes through ``scrub`` or ``clean_message``.
"""

from __future__ import annotations

import re
import threading
from enum import StrEnum


class FailureKind(StrEnum):
    """Every failure kind a summary, a log line or progress can record (a public contract)."""

    AUTH = "auth"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    SERVER = "server"
    BAD_PAYLOAD = "bad_payload"
    TIMEOUT = "timeout"
    NETWORK = "network"
    TIINGO = "tiingo"
    STORE = "store"
    CONFLICT = "conflict"
    SKIPPED = "skipped"
    EMPTY = "empty"
    INVOKE = "invoke"
    INVALID_EVENT = "invalid_event"
    FUNCTION_ERROR = "function_error"
    BAD_SUMMARY = "bad_summary"
    INTERNAL = "internal"
    ERROR = "error"


# Failures that are not the ticker's fault and would hit every other ticker the same way: they stop
# the run at once and never count as a ticker's attempt (so they never park a ticker).
_STOPS_RUN = frozenset({FailureKind.AUTH, FailureKind.RATE_LIMITED, FailureKind.SKIPPED, FailureKind.NETWORK})


def stops_run(kind: str | None) -> bool:
    """True for failures that stop the whole run and never count against a ticker."""
    return kind in _STOPS_RUN


def parks_at_once(kind: str | None) -> bool:
    """True for failures no retry can fix: the ticker is parked on the first one."""
    return kind == FailureKind.NOT_FOUND


class StockpipeError(Exception):
    kind: FailureKind = FailureKind.ERROR


class TiingoError(StockpipeError):
    """Anything that went wrong talking to Tiingo."""

    kind = FailureKind.TIINGO
    retryable = False


class AuthenticationError(TiingoError):
    """401/403: missing or invalid token. Never retried."""

    kind = FailureKind.AUTH


class NotFoundError(TiingoError):
    """404: Tiingo does not know the ticker (unknown, delisted or renamed)."""

    kind = FailureKind.NOT_FOUND


class RateLimitError(TiingoError):
    """429: the hourly allocation. Retried after Retry-After (or backoff) within the client's limits."""

    kind = FailureKind.RATE_LIMITED
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MonthlyLimitError(RateLimitError):
    """The monthly symbol/bandwidth limit Tiingo answers with HTTP 200 text: waiting seconds won't help."""

    retryable = False


class ServerError(TiingoError):
    """5xx from Tiingo."""

    kind = FailureKind.SERVER
    retryable = True


class BadPayloadError(TiingoError):
    """A 200 whose body is not valid data (never stored)."""

    kind = FailureKind.BAD_PAYLOAD


class TransportError(TiingoError):
    """The request timed out."""

    kind = FailureKind.TIMEOUT
    retryable = True


class NetworkError(TiingoError):
    """Tiingo could not be reached (DNS, refused, TLS, connect timeout) or the connection broke.

    A connection never made is no Tiingo request (not counted, its rate-limiter slot handed back); one
    that broke after the request was sent may have counted at Tiingo and is counted (tiingo.py).
    """

    kind = FailureKind.NETWORK
    retryable = True


class StoreError(StockpipeError):
    """A stored object cannot be read, decoded or written; names the key and the cause."""

    kind = FailureKind.STORE


class PreconditionFailed(StoreError):
    """A conditional write lost the race (S3 412/409, or the local equivalent)."""

    kind = FailureKind.CONFLICT


class ContentionError(StoreError):
    """A compare-and-swap write lost every race it was allowed (``objectstore.compare_and_swap``).

    Not a PreconditionFailed on purpose: callers that re-read and retry on one lost race must not
    retry a give-up (the loop that gave up already did).
    """


class SkippedError(StockpipeError):
    """Not attempted: an earlier ticker hit a failure that stops the run."""

    kind = FailureKind.SKIPPED


# ---------------------------------------------------------------- secrets: the one scrub

REDACTED = "***"
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_pattern: re.Pattern[str] | None = None
# Shorter strings are not treated as secrets: removing them would mangle ordinary text.
_MIN_SECRET_CHARS = 8


def register_secret(secret: str) -> None:
    """Remember a secret (the Tiingo token) so that ``scrub`` removes it from every message."""
    secret = secret.strip()
    if len(secret) < _MIN_SECRET_CHARS:
        return
    global _pattern
    with _secrets_lock:
        if secret in _secrets:
            return
        _secrets.add(secret)
        alternatives = sorted((re.escape(s) for s in _secrets), key=len, reverse=True)
        _pattern = re.compile(r"(?:token\s*)?(?:" + "|".join(alternatives) + ")", re.IGNORECASE)


def forget_secrets() -> None:
    """Tests only: start from no registered secret."""
    global _pattern
    with _secrets_lock:
        _secrets.clear()
        _pattern = None


def scrub(text: str) -> str:
    """``text`` without any registered secret (any case, with or without its ``Token`` prefix)."""
    pattern = _pattern
    return text if pattern is None else pattern.sub(REDACTED, text)


def clean_message(text: object, limit: int = 300) -> str:
    """The form of any text that leaves the process: scrubbed first, printable, one line, then cut."""
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in scrub(str(text))).split())
    if len(cleaned) > limit:
        cleaned = cleaned[: max(0, limit - 3)].rstrip() + "..."
    return cleaned
