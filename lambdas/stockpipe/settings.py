"""Reading typed settings from the environment, with errors that name the variable."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

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
