"""One small error hierarchy, so callers can react by kind instead of parsing messages.

Every error carries a short ``kind`` used in summaries, logs and progress records.
Messages never contain the Tiingo token (the client never puts it anywhere but a header).
"""

from __future__ import annotations


class StockpipeError(Exception):
    kind = "error"


class TiingoError(StockpipeError):
    """Anything that went wrong talking to Tiingo."""

    kind = "tiingo"
    retryable = False


class AuthenticationError(TiingoError):
    """401/403: missing or invalid token. Never retried."""

    kind = "auth"


class NotFoundError(TiingoError):
    """404: Tiingo does not know the ticker (unknown, delisted or renamed)."""

    kind = "not_found"


class RateLimitError(TiingoError):
    """429 hourly allocation, or the monthly symbol/bandwidth text Tiingo sends with HTTP 200."""

    kind = "rate_limited"
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, monthly: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        # A monthly limit will not clear by waiting seconds; callers stop instead of retrying.
        self.monthly = monthly
        if monthly:
            self.retryable = False


class ServerError(TiingoError):
    """5xx from Tiingo."""

    kind = "server"
    retryable = True


class BadPayloadError(TiingoError):
    """A 200 whose body is not the JSON shape we expect (never treated as data)."""

    kind = "bad_payload"


class TransportError(TiingoError):
    """Timeouts and connection failures."""

    kind = "timeout"
    retryable = True


class StoreError(StockpipeError):
    kind = "store"


class PreconditionFailed(StoreError):
    """A conditional write lost the race (S3 412/409, or the local equivalent)."""

    kind = "conflict"
