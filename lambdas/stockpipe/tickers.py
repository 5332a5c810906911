"""Ticker symbols as Tiingo spells them, validated before any request is made."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_VALID = re.compile(r"[A-Z0-9-]{1,20}")


def normalize_ticker(raw: Any) -> str:
    """Strip, upper-case and map share-class dots to hyphens (``brk.b`` -> ``BRK-B``).

    Raises ValueError naming the bad symbol for anything outside ``[A-Z0-9-]`` or over 20 characters.
    """
    if not isinstance(raw, str):
        raise ValueError(f"ticker must be a string, got {type(raw).__name__}: {str(raw)[:40]!r}")
    ticker = raw.strip().upper().replace(".", "-")
    if not _VALID.fullmatch(ticker):
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise ValueError(
            f"invalid ticker {shown!r}: use 1-20 characters from A-Z, 0-9 and '-' (e.g. 'AAPL', 'BRK-B')"
        )
    return ticker


def normalize_tickers(raw: Iterable[Any]) -> list[str]:
    """Normalised, de-duplicated, in first-seen order."""
    return list(dict.fromkeys(normalize_ticker(item) for item in raw))
