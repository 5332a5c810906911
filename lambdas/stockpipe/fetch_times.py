"""When each stored year of a ticker was fetched, in one small object: the corporate-action check's input.

Tiingo restates the adjusted columns of a ticker's whole history after a split or dividend, so stored
rows fetched before such an event are stale. The check needs the ticker's *oldest* fetch time; reading
it from the year objects costs a LIST and one GET per year (30 for 30 years), on every cold start. This
object holds it in one GET, outside the dataset tree (readers glob ``prices/daily`` only)::

    prices/fetch-times/<T>.json
    {"ticker": "AAPL", "adjusted_as_of": {"1995": "2024-06-14T23:00:00+00:00", ...}}

one entry per stored year: that object's ``stockpipe.adjusted_as_of``. The price store keeps it current
(``compare_and_swap``, like the year objects) whenever a write changes a year's entry, *after* the year
object is written: a stored entry is never newer than its object. When the object is missing or
unreadable it is rebuilt from the year objects (once) and written back.

Why a stale entry is safe: a year's fetch time only ever moves forward (a new object is fetched now; an
object keeps its oldest row's time until a write replaces every row), so any value read earlier is a
*lower bound* of the truth. A lower bound can only cause an extra rewrite, never a missed one; the
checker confirms a "rewrite" with a fresh read before acting on it. Standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stockpipe.layout import fetch_times_key


@dataclass(frozen=True)
class FetchTimes:
    """One ticker's entries, and the stored version they came from (None: no object stored yet)."""

    by_year: Mapping[int, datetime] = field(default_factory=dict)
    version: str | None = None

    def oldest(self) -> datetime | None:
        """When the oldest stored row of the ticker was fetched (None: nothing stored)."""
        return min(self.by_year.values(), default=None)

    def updated(self, changes: Mapping[int, datetime]) -> dict[int, datetime] | None:
        """The entries after ``changes``, or None when nothing would change (no write needed)."""
        if all(self.by_year.get(year) == as_of for year, as_of in changes.items()):
            return None
        return {**self.by_year, **changes}


def key(ticker: str) -> str:
    return fetch_times_key(ticker)


def encode(ticker: str, by_year: Mapping[int, datetime]) -> bytes:
    entries = {str(year): by_year[year].isoformat() for year in sorted(by_year)}
    return json.dumps({"ticker": ticker, "adjusted_as_of": entries}, sort_keys=True).encode()


def decode(body: bytes, ticker: str) -> dict[int, datetime]:
    """The entries of a stored object; ValueError saying what is wrong (never quoting the body)."""
    try:
        parsed: Any = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise ValueError("not JSON") from None
    if not isinstance(parsed, dict) or parsed.get("ticker") != ticker:
        raise ValueError(f"not the fetch times of {ticker}")
    entries = parsed.get("adjusted_as_of")
    if not isinstance(entries, dict):
        raise ValueError("adjusted_as_of is not an object")
    by_year: dict[int, datetime] = {}
    for year, value in entries.items():
        try:
            as_of = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            as_of = None
        if not (isinstance(year, str) and year.isdigit()) or as_of is None or as_of.tzinfo is None:
            raise ValueError("an entry is not <year>: <ISO timestamp with a time zone>")
        by_year[int(year)] = as_of
    return by_year
