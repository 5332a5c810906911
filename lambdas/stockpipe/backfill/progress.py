"""Backfill progress transitions: pure functions ``(state, ...) -> state``, and the one import callers need.

Keeping every change a pure function is what makes the compare-and-swap store safe: on a lost race the
store re-reads the newer state and re-applies the same change, so overlapping runs never lose progress.
Each transition reads and writes only one ticker's record, so the store (one object per ticker)
applies it to ``Progress.of(ticker, record)``. Here: claims and leases, the operator's ``retry`` and
``reset``, and ``extend_history``; what a finished step changes is in ``outcomes``. The state types and
queries (``state``) and the stored shapes (``progress_codec``) are re-exported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import date, datetime, timedelta

from stockpipe.backfill.outcomes import (
    MAX_ERROR_CHARS,
    apply_outcome,
    record_chunk,
    record_empty_chunk,
    record_failure,
    record_metadata,
)
from stockpipe.backfill.plan import count_chunks
from stockpipe.backfill.progress_codec import VERSION, ProgressFormatError, from_json, to_json
from stockpipe.backfill.state import (
    ClaimRejected,
    Lease,
    Planning,
    Progress,
    TickerProgress,
    Work,
    chunks_left,
    is_pending_chunk,
    lease_expiry_of,
    lease_is_live,
    next_work,
    summarize,
    ticker_detail,
    ticker_state,
)
from stockpipe.calendar import trading_days

__all__ = [
    "MAX_ERROR_CHARS",
    "VERSION",
    "ClaimRejected",
    "Lease",
    "Planning",
    "Progress",
    "ProgressFormatError",
    "TickerProgress",
    "Work",
    "apply_outcome",
    "chunks_left",
    "claim",
    "count_chunks",
    "extend_history",
    "from_json",
    "lease_expiry_of",
    "lease_is_live",
    "next_work",
    "record_chunk",
    "record_empty_chunk",
    "record_failure",
    "record_metadata",
    "release",
    "release_abandoned",
    "reset",
    "retry",
    "summarize",
    "ticker_detail",
    "ticker_state",
    "to_json",
]

# ---------------------------------------------------------------- transitions


def claim(progress: Progress, work: Work, *, owner: str, now: datetime, lease_seconds: float) -> Progress:
    """Lease ``work`` for ``owner``; ClaimRejected when it is no longer the ticker's next step."""
    record = progress.get(work.ticker)
    if record is not None and lease_is_live(record, now, owner):
        raise ClaimRejected(f"{work.ticker} is leased by another run until {record.lease.expires}")  # type: ignore[union-attr]
    if record is not None and (record.done or record.parked):
        raise ClaimRejected(f"{work.ticker} is {'done' if record.done else 'parked'}")
    due = record is not None and record.metadata == "due"
    if work.kind == "metadata":
        if not due:
            raise ClaimRejected(f"{work.ticker} needs no metadata lookup")
    elif due:
        raise ClaimRejected(f"{work.ticker} waits for its metadata lookup")
    elif record is not None and record.planned and not is_pending_chunk(record, work.start, work.end):
        raise ClaimRejected(f"{work.ticker} moved on from {work.start}")
    lease = Lease(owner, now + timedelta(seconds=lease_seconds), work.start, work.end)
    base = record or TickerProgress()
    return progress.with_ticker(work.ticker, replace(base, lease=lease, updated_at=now))


def release(progress: Progress, ticker: str, *, owner: str, now: datetime) -> Progress:
    """Drop ``owner``'s lease (a run giving back work it did not finish)."""
    record = progress.get(ticker)
    if record is None or record.lease is None or record.lease.owner != owner:
        return progress
    return progress.with_ticker(ticker, replace(record, lease=None, updated_at=now))


def release_abandoned(
    progress: Progress, tickers: Iterable[str], *, is_gone: Callable[[str], bool], now: datetime
) -> Progress:
    """Drop live leases whose owner ``is_gone`` (a local run whose process ended without giving them back)."""
    for ticker in tickers:
        record = progress.get(ticker)
        if record is not None and lease_is_live(record, now) and is_gone(record.lease.owner):  # type: ignore[union-attr]
            progress = progress.with_ticker(ticker, replace(record, lease=None, updated_at=now))
    return progress


def extend_history(
    progress: Progress, tickers: Iterable[str], *, backfill_start: date, now: datetime
) -> Progress:
    """Plan the days a start date moved earlier adds to planned tickers (a done ticker is re-opened).

    Only the missing earlier range is added: what is fetched stays fetched, and a start moved later
    changes nothing. With Tiingo's metadata read, the days before its first price (``first_date``) are
    never planned and a ticker without prices stays done. Without it, the answers tell: prices that
    began after the first trading day of the plan mean a listing inside the range (nothing earlier);
    otherwise the earlier range is asked for (one request; an empty answer makes the metadata decide).
    """
    for ticker in tickers:
        record = progress.get(ticker)
        if record is None or not record.planned or record.end is None:
            continue
        if record.metadata == "read":
            if record.first_date is None:
                continue
            target = max(backfill_start, record.first_date)
        elif listed_after_start(record):
            continue
        else:
            target = backfill_start
        if record.start is None:  # nothing was planned: no price between the old start and the end
            if target > record.end:
                continue
            extended = replace(record, start=target, next_start=target, done=False, updated_at=now)
        elif target < record.start:
            fetched_from = record.fetched_from or record.start
            extended = replace(record, start=target, fetched_from=fetched_from, done=False, updated_at=now)
        else:
            continue
        progress = progress.with_ticker(ticker, extended)
    return progress


def listed_after_start(record: TickerProgress) -> bool:
    """True when the first price seen came after the plan's first trading day: no price before it."""
    if record.first_date is None or record.start is None or record.first_date <= record.start:
        return False
    first_trading_day = next(trading_days(record.start, record.first_date), record.first_date)
    return record.first_date > first_trading_day


def retry(progress: Progress, tickers: Iterable[str], *, now: datetime) -> Progress:
    """Un-park: attempts start again from zero; the plan and data so far are kept."""
    for ticker in tickers:
        record = progress.get(ticker)
        if record is not None and (record.parked or record.attempts or record.last_error):
            progress = progress.with_ticker(
                ticker, replace(record, parked=False, attempts=0, last_error=None, updated_at=now)
            )
    return progress


def reset(progress: Progress, tickers: Iterable[str]) -> Progress:
    """Forget the tickers entirely: the next run plans them again and starts over."""
    for ticker in tickers:
        progress = progress.with_ticker(ticker, None)
    return progress
