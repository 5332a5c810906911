"""The Tiingo token: from Secrets Manager in AWS (re-read after a maximum age), from the env locally.

A rotated secret takes effect without a redeploy or a cold start: the cached token is re-read once it is
older than ``TIINGO_TOKEN_MAX_AGE_MINUTES``, and at once when Tiingo refuses it (``refresh``), so a
rotation costs at most one refused request. Every token read is registered with ``errors.register_secret``
at the moment it is read, so the one scrub removes it (old and new) from every message that leaves.
Errors name the variable or the secret ARN, never the value.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from stockpipe.errors import register_secret
from stockpipe.logs import get_logger
from stockpipe.settings import API_TOKEN_ENV, TokenSettings

_log = get_logger("secrets")


class TokenSource:
    """The current token, read through ``read`` and kept at most ``max_age`` seconds (None: forever).

    Thread-safe: one re-read at a time, and a refused token is re-read only once however many threads
    saw it refused (``refresh`` compares with the token the caller used).
    """

    def __init__(
        self,
        read: Callable[[], str],
        *,
        max_age: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._token = _checked(read())
        self._read_at = clock()

    @classmethod
    def fixed(cls, token: str) -> TokenSource:
        """A token that never changes (TIINGO_API_TOKEN, tests)."""
        return cls(lambda: token)

    def __repr__(self) -> str:
        return f"TokenSource(max_age={self.max_age})"

    def current(self) -> str:
        """The token to send now (re-read first when it is older than ``max_age``)."""
        with self._lock:
            if self.max_age is not None and self._clock() - self._read_at >= self.max_age:
                self._reread()
            return self._token

    def refresh(self, refused: str) -> str:
        """After Tiingo refused ``refused``: re-read now (unless another thread already did)."""
        with self._lock:
            if self._token == refused:
                self._reread()
            return self._token

    def _reread(self) -> None:
        try:
            self._token = _checked(self._read())
        except ValueError as exc:
            # Secrets Manager unavailable for a moment: the cached token usually still works.
            _log.warning("keeping the cached Tiingo token", extra={"detail": str(exc)})
        self._read_at = self._clock()


def token_source_from_env(
    env: Mapping[str, str],
    *,
    max_age_minutes: int,
    secrets_client: Any = None,
    clock: Callable[[], float] = time.monotonic,
) -> TokenSource:
    """TIINGO_SECRET_ARN (SecretString is the bare token) wins over TIINGO_API_TOKEN (never re-read)."""
    arn = TokenSettings.from_env(env).secret_arn
    if arn:
        if secrets_client is None:
            import boto3

            secrets_client = boto3.client("secretsmanager")
        return TokenSource(
            lambda: _read_secret(secrets_client, arn), max_age=max_age_minutes * 60.0, clock=clock
        )
    token = env.get(API_TOKEN_ENV, "").strip()
    if token:
        return TokenSource.fixed(token)
    raise ValueError("no Tiingo token: set TIINGO_SECRET_ARN (in AWS) or TIINGO_API_TOKEN (locally)")


def _read_secret(secrets_client: Any, arn: str) -> str:
    try:
        token = secrets_client.get_secret_value(SecretId=arn).get("SecretString") or ""
    except Exception as exc:  # botocore's ClientError or a connection error: translated here, once
        response = getattr(exc, "response", None) or {}
        code = response.get("Error", {}).get("Code") or type(exc).__name__
        raise ValueError(f"cannot read the Tiingo token from secret {arn}: {code}") from None
    if not token.strip():
        raise ValueError(f"secret {arn} has an empty SecretString; store the bare Tiingo token")
    return token


def _checked(token: str) -> str:
    """The token as sent (stripped), registered for scrubbing; ValueError without echoing it."""
    if not isinstance(token, str) or not token.strip():
        raise ValueError("a Tiingo API token is required (set TIINGO_API_TOKEN or TIINGO_SECRET_ARN)")
    token = token.strip()
    register_secret(token)  # before any check that could put it into a message
    if not token.isprintable() or any(ch.isspace() for ch in token):
        raise ValueError("the Tiingo API token contains whitespace or control characters")
    return token
