"""The backfill's state as plain immutable data, and the questions asked of it.

One ``TickerProgress`` per ticker: the planned range ``[start, end]``, what is fetched of it, the
failure bookkeeping and the lease of the run working on it. What is fetched is always one contiguous
range, ``[fetched_from or start, next_start - 1 day]`` (``next_start`` None: up to ``end``), so two
numbers say what is left: the days after it (walked forward from ``next_start``) and, once a history
was extended to an earlier start, the days before it (walked backwards from ``fetched_from``).

Where a history starts and ends: a new ticker is planned without asking Tiingo, from
``BACKFILL_START_DATE`` to the plan day, and its first request covers as much of that as one request may
(``next_work``). Its answer says where the prices are (``first_date``: the first day seen). Only an
answer without rows for trading days is ambiguous (a glitch, or no prices there): then ``metadata`` is
``"due"`` and the next step reads Tiingo's metadata, whose first and last dates decide (``outcomes``).
``metadata == "read"``: ``first_date`` is Tiingo's own and the range ends at its last price.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from stockpipe.backfill.plan import (
    ONE_DAY,
    backward_run,
    count_chunks,
    count_chunks_before,
    forward_run,
)

Metadata = Literal["due", "read"]


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
    # None: Tiingo's metadata not needed so far; "due": an empty answer waits for it; "read": read.
    metadata: Metadata | None = None
    # After a failed request of several chunks: the most the next request may cover (0: no limit).
    max_chunks: int = 0


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
    """What a run should do next for one ticker: a metadata lookup, or one request for ``chunks`` chunks."""

    ticker: str
    kind: Literal["metadata", "chunk"]
    start: date | None = None
    end: date | None = None
    chunks: int = 1


@dataclass(frozen=True)
class Planning:
    """What the next request of a ticker depends on besides its record (the run's settings and day)."""

    chunk_months: int
    backfill_start: date
    plan_day: date
    max_chunks: int = 0  # BACKFILL_MAX_CHUNKS_PER_REQUEST (0: no limit)

    def limit(self, record: TickerProgress | None) -> int:
        """Chunks the ticker's next request may cover (0: all): the setting or the ticker's split."""
        limits = [n for n in (self.max_chunks, record.max_chunks if record else 0) if n > 0]
        return min(limits, default=0)


# ---------------------------------------------------------------- queries


def lease_is_live(record: TickerProgress, now: datetime, owner: str | None = None) -> bool:
    """True when someone other than ``owner`` holds an unexpired lease."""
    lease = record.lease
    return lease is not None and lease.expires > now and lease.owner != owner


def earlier_days_pending(record: TickerProgress) -> bool:
    """True while an extended history still has days before the fetched range."""
    return record.fetched_from is not None and record.start is not None and record.start < record.fetched_from


def pending_run(record: TickerProgress, chunk_months: int, limit: int = 0) -> tuple[date, date, int] | None:
    """The ticker's next request: up to ``limit`` chunks (0: all) after the fetched range, else before it."""
    if record.end is not None:
        forward = forward_run(record.next_start, record.end, chunk_months, limit)
        if forward is not None:
            return forward
    if earlier_days_pending(record):
        assert record.start is not None
        assert record.fetched_from is not None
        return backward_run(record.start, record.fetched_from, chunk_months, limit)
    return None


def is_pending_chunk(record: TickerProgress, start: date | None, end: date | None) -> bool:
    """True when ``[start, end]`` is where the ticker's pending work begins (whatever the chunk size)."""
    if record.next_start is not None:
        return start == record.next_start
    return earlier_days_pending(record) and end is not None and record.fetched_from == end + ONE_DAY


def next_work(
    progress: Progress, ticker: str, *, planning: Planning, now: datetime, owner: str | None = None
) -> Work | None:
    """The next step for ``ticker``; None when it is finished, parked or leased by another run.

    A ticker never answered yet is asked for its whole range at once, ``[BACKFILL_START_DATE, plan
    day]`` (up to the request limit): no metadata lookup first.
    """
    record = progress.get(ticker)
    if record is not None and (record.done or record.parked or lease_is_live(record, now, owner)):
        return None
    if record is not None and record.metadata == "due":
        return Work(ticker, "metadata")
    limit = planning.limit(record)
    if record is None or not record.planned:
        run = forward_run(planning.backfill_start, planning.plan_day, planning.chunk_months, limit)
    else:
        run = pending_run(record, planning.chunk_months, limit)
    return None if run is None else Work(ticker, "chunk", *run)


def ticker_state(record: TickerProgress | None) -> str:
    """``done`` / ``parked`` / ``in_progress`` / ``pending`` (no answer with a range yet).

    A lease does not change the state (it is not part of the index's summary).
    """
    if record is None:
        return "pending"
    if record.parked:
        return "parked"
    if record.done:
        return "done"
    if record.planned:
        return "in_progress"
    return "pending"


def chunks_left(record: TickerProgress | None, chunk_months: int) -> int | None:
    """Chunks still to fetch (requests may cover several); None while nothing has answered yet."""
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


def ticker_detail(record: TickerProgress | None, chunk_months: int) -> dict[str, Any]:
    """One ticker's entry of the ``status`` answer (the keys are a public contract)."""
    entry: dict[str, Any] = {"state": ticker_state(record), "chunks_left": chunks_left(record, chunk_months)}
    if record is None:
        return entry
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
    if record.metadata is not None:
        entry["metadata"] = record.metadata
    if record.max_chunks:
        entry["max_chunks"] = record.max_chunks
    return entry


def summarize(progress: Progress, universe: Iterable[str], *, chunk_months: int) -> dict[str, Any]:
    """Per ticker its state and chunks left, plus counts per state (over a whole loaded Progress).

    Tickers of the universe without a record show as pending; records outside the universe are kept
    and shown too (a ticker removed from the universe keeps its history). The Lambda's ``status``
    answer is paged over the index instead (``status``); this serves local tools over a loaded state.
    """
    names = list(dict.fromkeys([*universe, *sorted(progress.tickers)]))
    tickers: dict[str, Any] = {}
    counts = {"done": 0, "in_progress": 0, "parked": 0, "pending": 0}
    total_left = 0
    for name in names:
        entry = ticker_detail(progress.get(name), chunk_months)
        counts[entry["state"]] += 1
        if entry["chunks_left"] is not None and entry["state"] != "parked":
            total_left += entry["chunks_left"]
        tickers[name] = entry
    return {"tickers": tickers, "counts": counts, "chunks_left": total_left}


def iso(value: date | datetime | None) -> str | None:
    """Dates as YYYY-MM-DD, timestamps to the second with their offset (progress objects and status)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return value.isoformat()
