"""The backfill's state as plain immutable data, and the questions asked of it.

One ``TickerProgress`` per ticker: the planned range ``[start, end]``, what is fetched of it, the
failure bookkeeping and the lease of the run working on it. What is fetched is always one contiguous
range, ``[fetched_from or start, next_start - 1 day]`` (``next_start`` None: up to ``end``), so two
numbers say what is left: the days after it (walked forward from ``next_start``) and, once a history
was extended to an earlier start, the days before it (walked backwards from ``fetched_from``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from stockpipe.backfill.plan import ONE_DAY, count_chunks, count_chunks_before, next_chunk, previous_chunk


class ClaimRejected(Exception):
    """The work item is not (or no longer) ours to do: finished, parked, moved on, or leased elsewhere."""


@dataclass(frozen=True)
class Lease:
    """A claim on a ticker's next step; expires so that a crashed run never blocks the ticker for good."""

    owner: str
    expires: datetime
    start: date | None = None  # None: the claim is for the metadata lookup
    end: date | None = None


@dataclass(frozen=True)
class TickerProgress:
    start: date | None = None
    end: date | None = None
    next_start: date | None = None
    done: bool = False
    attempts: int = 0
    last_error: str | None = None
    parked: bool = False
    first_date: date | None = None
    updated_at: datetime | None = None
    planned: bool = False  # metadata read and [start, end] fixed
    lease: Lease | None = None
    chunks_done: int = 0
    rows: int = 0
    requests: int = 0
    # First fetched day when the history was extended to an earlier ``start`` and the days before it are
    # still to fetch; None: the fetched range begins at ``start``.
    fetched_from: date | None = None


@dataclass(frozen=True)
class Progress:
    tickers: Mapping[str, TickerProgress] = field(default_factory=dict)

    def get(self, ticker: str) -> TickerProgress | None:
        return self.tickers.get(ticker)

    def with_ticker(self, ticker: str, record: TickerProgress | None) -> Progress:
        """A copy with ``ticker`` replaced (or removed when record is None)."""
        tickers = dict(self.tickers)
        if record is None:
            tickers.pop(ticker, None)
        else:
            tickers[ticker] = record
        return Progress(tickers)

    @classmethod
    def of(cls, ticker: str, record: TickerProgress | None) -> Progress:
        """A one-ticker state (single-ticker transitions, for a store that keeps one object per ticker)."""
        return cls({} if record is None else {ticker: record})


@dataclass(frozen=True)
class Work:
    """What a run should do next for one ticker."""

    ticker: str
    kind: Literal["metadata", "chunk"]
    start: date | None = None
    end: date | None = None


# ---------------------------------------------------------------- queries


def lease_is_live(record: TickerProgress, now: datetime, owner: str | None = None) -> bool:
    """True when someone other than ``owner`` holds an unexpired lease."""
    lease = record.lease
    return lease is not None and lease.expires > now and lease.owner != owner


def earlier_days_pending(record: TickerProgress) -> bool:
    """True while an extended history still has days before the fetched range."""
    return record.fetched_from is not None and record.start is not None and record.start < record.fetched_from


def pending_chunk(record: TickerProgress, chunk_months: int) -> tuple[date, date] | None:
    """The ticker's next chunk: the days after the fetched range first, then the days before it."""
    if record.end is not None:
        forward = next_chunk(record.next_start, record.end, chunk_months)
        if forward is not None:
            return forward
    if earlier_days_pending(record):
        assert record.start is not None
        assert record.fetched_from is not None
        return previous_chunk(record.start, record.fetched_from, chunk_months)
    return None


def is_pending_chunk(record: TickerProgress, start: date | None, end: date | None) -> bool:
    """True when ``[start, end]`` is where the ticker's pending work begins (whatever the chunk size)."""
    if record.next_start is not None:
        return start == record.next_start
    return earlier_days_pending(record) and end is not None and record.fetched_from == end + ONE_DAY


def next_work(
    progress: Progress, ticker: str, *, chunk_months: int, now: datetime, owner: str | None = None
) -> Work | None:
    """The next step for ``ticker``; None when it is finished, parked or leased by another run."""
    record = progress.get(ticker)
    if record is None:
        return Work(ticker, "metadata")
    if record.done or record.parked or lease_is_live(record, now, owner):
        return None
    if not record.planned:
        return Work(ticker, "metadata")
    chunk = pending_chunk(record, chunk_months)
    if chunk is None:
        return None
    return Work(ticker, "chunk", chunk[0], chunk[1])


def ticker_state(record: TickerProgress | None) -> str:
    """``done`` / ``parked`` / ``in_progress`` / ``pending`` (not started: metadata not read yet)."""
    if record is None:
        return "pending"
    if record.parked:
        return "parked"
    if record.done:
        return "done"
    if record.planned or record.lease is not None:
        return "in_progress"
    return "pending"


def chunks_left(record: TickerProgress | None, chunk_months: int) -> int | None:
    """Invocations still needed; None while the range is unknown (metadata not read)."""
    if record is None or not record.planned:
        return None
    if record.done or record.end is None:
        return 0
    left = count_chunks(record.next_start, record.end, chunk_months)
    if earlier_days_pending(record):
        assert record.start is not None
        assert record.fetched_from is not None
        left += count_chunks_before(record.start, record.fetched_from, chunk_months)
    return left


def lease_expiry_of(
    progress: Progress,
    tickers: Iterable[str],
    now: datetime,
    *,
    is_gone: Callable[[str], bool] | None = None,
) -> datetime | None:
    """The earliest time a live lease on one of ``tickers`` expires; None when none blocks them.

    A runner waiting for another run re-reads progress and asks again: None means go now. With
    ``is_gone`` (``owners.owner_process_gone`` for local runs) leases of runs known to be gone never block.
    """
    expiries = [
        record.lease.expires
        for name in tickers
        if (record := progress.get(name)) is not None and record.lease is not None
        if record.lease.expires > now and not record.done and not record.parked
        if is_gone is None or not is_gone(record.lease.owner)
    ]
    return min(expiries, default=None)


def summarize(progress: Progress, universe: Iterable[str], *, chunk_months: int) -> dict[str, Any]:
    """The ``status`` answer: per ticker its state and chunks left, plus counts per state.

    Tickers of the universe without a record show as pending; records outside the universe are kept
    and shown too (a ticker removed from the universe keeps its history).
    """
    names = list(dict.fromkeys([*universe, *sorted(progress.tickers)]))
    tickers: dict[str, Any] = {}
    counts = {"done": 0, "in_progress": 0, "parked": 0, "pending": 0}
    total_left = 0
    for name in names:
        record = progress.get(name)
        state = ticker_state(record)
        counts[state] += 1
        left = chunks_left(record, chunk_months)
        if left is not None and state != "parked":
            total_left += left
        entry: dict[str, Any] = {"state": state, "chunks_left": left}
        if record is not None:
            entry.update(
                start=iso(record.start),
                end=iso(record.end),
                next_start=iso(record.next_start),
                first_date=iso(record.first_date),
                attempts=record.attempts,
                last_error=record.last_error,
                chunks_done=record.chunks_done,
                rows=record.rows,
                leased_until=iso(record.lease.expires) if record.lease else None,
            )
            if record.fetched_from is not None:
                entry["fetched_from"] = iso(record.fetched_from)
        tickers[name] = entry
    return {"tickers": tickers, "counts": counts, "chunks_left": total_left}


def iso(value: date | datetime | None) -> str | None:
    """Dates as YYYY-MM-DD, timestamps to the second with their offset (progress.json and status)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return value.isoformat()
