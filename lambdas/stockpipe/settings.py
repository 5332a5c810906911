"""Reading typed settings from the environment, with errors that name the variable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Final

# Retries of one Tiingo request after the first attempt. Here, not in tiingo.py, because the orchestrator
# budgets a step's worst case (1 + retries) without importing httpx/pyarrow on its cold start.
DEFAULT_MAX_RETRIES = 4


def env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def env_date(env: Mapping[str, str], name: str, default: date) -> date:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{name} must be a date YYYY-MM-DD, got {raw!r}") from None


def data_location(env: Mapping[str, str]) -> str:
    """``s3://$DATA_BUCKET`` in AWS; ``$DATA_DIR`` (a local directory, same layout) for local runs."""
    bucket = env.get("DATA_BUCKET", "").strip()
    if bucket:
        return f"s3://{bucket}"
    directory = env.get("DATA_DIR", "").strip()
    if directory:
        return directory
    raise ValueError("DATA_BUCKET is required (or DATA_DIR for a local run)")


DEFAULT_TIINGO_BASE_URL: Final = "https://api.tiingo.com"


@dataclass(frozen=True)
class TiingoSettings:
    """How both Lambdas reach Tiingo: every ``TIINGO_*`` variable but the token itself.

    ``from_env`` is what the handlers read; ``to_env`` is what the Pulumi components set, so the two
    cannot drift. The token travels as ``TIINGO_SECRET_ARN`` (AWS) or ``TIINGO_API_TOKEN`` (local only).
    """

    base_url: str = DEFAULT_TIINGO_BASE_URL  # TIINGO_BASE_URL
    requests_per_hour: int = 0  # TIINGO_REQUESTS_PER_HOUR: client-side limit, 0 = none
    max_limit_wait_seconds: int = 60  # TIINGO_MAX_LIMIT_WAIT_SECONDS: longest wait for that limit
    token_max_age_minutes: int = 15  # TIINGO_TOKEN_MAX_AGE_MINUTES: a rotated secret is read after this

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TiingoSettings:
        return cls(
            base_url=env.get("TIINGO_BASE_URL", "").strip() or cls.base_url,
            requests_per_hour=env_int(env, "TIINGO_REQUESTS_PER_HOUR", cls.requests_per_hour),
            max_limit_wait_seconds=env_int(env, "TIINGO_MAX_LIMIT_WAIT_SECONDS", cls.max_limit_wait_seconds),
            token_max_age_minutes=env_int(
                env, "TIINGO_TOKEN_MAX_AGE_MINUTES", cls.token_max_age_minutes, minimum=1
            ),
        )

    def to_env(self) -> dict[str, str]:
        return {
            "TIINGO_BASE_URL": self.base_url,
            "TIINGO_REQUESTS_PER_HOUR": str(self.requests_per_hour),
            "TIINGO_MAX_LIMIT_WAIT_SECONDS": str(self.max_limit_wait_seconds),
            "TIINGO_TOKEN_MAX_AGE_MINUTES": str(self.token_max_age_minutes),
        }
