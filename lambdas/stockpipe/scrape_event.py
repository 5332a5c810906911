"""Validation of the scraper's event: every problem is a ValueError that names it, before any I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from stockpipe.eventbridge import is_scheduled_envelope
from stockpipe.tickers import normalize_tickers

_KEYS = {"tickers", "start_date", "end_date"}
MAX_TICKERS = 20_000


@dataclass(frozen=True)
class ScrapeRequest:
    tickers: tuple[str, ...] | None  # None: the stored universe
    start: date | None  # None: catch-up mode
    end: date | None


def parse_scrape_event(event: Any) -> ScrapeRequest:
    if event is None:
        event = {}
    if not isinstance(event, dict):
        raise ValueError(f"event must be a JSON object, got {type(event).__name__}")
    if is_scheduled_envelope(event):
        event = {}
    unknown = sorted(set(event) - _KEYS, key=str)
    if unknown:
        raise ValueError(f"unknown event key(s) {unknown}; allowed: tickers, start_date, end_date")
    tickers = None
    if "tickers" in event:
        raw = event["tickers"]
        if not isinstance(raw, list):
            raise ValueError(f"tickers must be a list of strings, got {type(raw).__name__}")
        if not raw:
            raise ValueError("tickers must not be empty (omit the key to use the stored universe)")
        if len(raw) > MAX_TICKERS:
            raise ValueError(f"tickers has {len(raw)} entries; at most {MAX_TICKERS} per event")
        tickers = tuple(normalize_tickers(raw))
    start = _date(event, "start_date")
    end = _date(event, "end_date")
    if end is not None and start is None:
        raise ValueError("end_date needs a start_date")
    if start is not None and end is not None and end < start:
        raise ValueError(f"end_date {end} is before start_date {start}")
    return ScrapeRequest(tickers, start, end)


def _date(event: dict[str, Any], key: str) -> date | None:
    if key not in event:
        return None
    raw = event[key]
    if not isinstance(raw, str):
        raise ValueError(f"{key} must be a 'YYYY-MM-DD' string, got {type(raw).__name__}")
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{key} must be a date 'YYYY-MM-DD', got {raw[:40]!r}") from None
    if len(raw) != 10:
        raise ValueError(f"{key} must be a date 'YYYY-MM-DD', got {raw[:40]!r}")
    if value.year < 1900:
        raise ValueError(f"{key} {value} is before 1900")
    return value
