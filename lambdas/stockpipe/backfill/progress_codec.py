"""The stored shapes of backfill progress: one object per ticker, and the one file of earlier versions.

``backfill/tickers/<T>.json`` (version 2, a public contract)::

    {"version": 2, "ticker": "AAPL", "rev": 7, "progress": {<record>} | null}

``rev`` counts the object's writes (the index keeps the newest summary by it); ``progress`` is the
record (``record_codec``), null once the ticker was reset. ``backfill/progress.json`` (version 1:
``{"version": 1, "tickers": {T: <record>}}``) is what earlier versions wrote; it is read once, to
migrate it (``migration``), and never written. Both are read strictly: any problem is one
``ProgressFormatError`` naming the field (``progress.done``, ``tickers.AAPL.done``).
"""

from __future__ import annotations

import json

from stockpipe.backfill.record_codec import (
    Fields,
    ProgressFormatError,
    check_version,
    describe,
    load_object,
    no_unknown_keys,
    record_from_dict,
    record_to_dict,
)
from stockpipe.backfill.state import Progress, TickerProgress
from stockpipe.errors import clean_message

__all__ = [
    "LEGACY_VERSION",
    "TICKER_VERSION",
    "VERSION",
    "ProgressFormatError",
    "from_json",
    "ticker_from_json",
    "ticker_to_json",
    "to_json",
]

LEGACY_VERSION = 1
VERSION = LEGACY_VERSION  # the name earlier callers used for the progress.json version
TICKER_VERSION = 2
_TICKER_KEYS = ("version", "ticker", "rev", "progress")


# ---------------------------------------------------------------- one object per ticker


def ticker_to_json(ticker: str, record: TickerProgress | None, rev: int) -> bytes:
    """The ticker object, keys in a fixed order (unchanged state is byte-identical)."""
    progress = None if record is None else record_to_dict(record)
    body = {"version": TICKER_VERSION, "ticker": ticker, "rev": rev, "progress": progress}
    return json.dumps(body, indent=1).encode()


def ticker_from_json(body: bytes | str, ticker: str) -> tuple[TickerProgress | None, int]:
    """``(record, rev)``; ProgressFormatError naming the field for anything malformed."""
    data = load_object(body)
    no_unknown_keys(data, _TICKER_KEYS, "")
    check_version(data, TICKER_VERSION)
    if data.get("ticker") != ticker:
        got = describe(data.get("ticker"))
        raise ProgressFormatError("ticker", f"must be {json.dumps(ticker)} (the object's name), got {got}")
    rev = Fields("", data).count("rev", required=True, minimum=1)
    if "progress" not in data:
        raise ProgressFormatError("progress", "is required (an object, or null after a reset)")
    raw = data["progress"]
    return (None if raw is None else record_from_dict("progress", raw)), rev


# ---------------------------------------------------------------- progress.json of earlier versions


def to_json(progress: Progress) -> bytes:
    """A version-1 ``progress.json`` (what earlier versions wrote; tests and migration tools use it)."""
    tickers = {name: record_to_dict(progress.tickers[name], legacy=True) for name in sorted(progress.tickers)}
    return json.dumps({"version": LEGACY_VERSION, "tickers": tickers}, indent=1).encode()


def from_json(body: bytes | str) -> Progress:
    """Parse a version-1 ``progress.json``; ProgressFormatError naming the field (``tickers.AAPL.done``)."""
    data = load_object(body, "the file")
    no_unknown_keys(data, ("version", "tickers"), "the file")
    check_version(data, LEGACY_VERSION)
    raw = data.get("tickers", {})
    if not isinstance(raw, dict):
        raise ProgressFormatError("tickers", f"must be an object, got {describe(raw)}")
    return Progress(
        {name: record_from_dict(f"tickers.{clean_message(name, 40)}", value) for name, value in raw.items()}
    )
