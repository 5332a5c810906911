"""The few stack settings a local run reads from ``Pulumi.<stack>.yaml`` (``stock-pipeline:*`` keys)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from stockpipe.tickers import normalize_tickers

STACK_PREFIX = "stock-pipeline:"


@dataclass(frozen=True)
class StackConfig:
    """The few stack settings a local run uses (from Pulumi.<stack>.yaml)."""

    tickers: list[str] = field(default_factory=list)
    start_date: date = date(2000, 1, 1)
    chunk_months: int = 6
    requests_per_hour: int = 50


def load_stack_config(path: str | os.PathLike[str]) -> StackConfig:
    """Read ``stock-pipeline:*`` keys; a missing file gives the defaults, a malformed one a ValueError."""
    import yaml

    file = Path(path)
    if not file.exists():
        return StackConfig()
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{file} is not valid YAML: {str(exc)[:200]}") from None
    config = data.get("config", {}) if isinstance(data, dict) else {}
    if not isinstance(config, dict):
        raise ValueError(f"{file}: 'config' must be a mapping")

    def value(key: str, default: Any) -> Any:
        raw = config.get(STACK_PREFIX + key, default)
        return raw.get("value", default) if isinstance(raw, dict) else raw  # Pulumi's {value: ...} form

    tickers = value("tickers", [])
    if not isinstance(tickers, list):
        raise ValueError(f"{file}: {STACK_PREFIX}tickers must be a list")
    try:
        start = value("backfillStartDate", "2000-01-01")
        start_date = start if isinstance(start, date) else date.fromisoformat(str(start))
        chunk_months = int(value("backfillChunkMonths", 6))
        per_hour = int(value("tiingoRequestsPerHour", 50))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{file}: {exc}") from None
    if chunk_months < 0:
        raise ValueError(f"{file}: {STACK_PREFIX}backfillChunkMonths must be >= 0, got {chunk_months}")
    if per_hour < 1:
        raise ValueError(f"{file}: {STACK_PREFIX}tiingoRequestsPerHour must be >= 1, got {per_hour}")
    return StackConfig(normalize_tickers(tickers), start_date, chunk_months, per_hour)
