"""Backfill progress transitions: pure functions ``(state, outcome) -> state``.

Keeping every change a pure function is what makes the compare-and-swap store safe: on a lost race the
store re-reads the newer state and re-applies the same outcome, so overlapping runs never lose progress.
Each single-ticker transition reads and writes only that ticker's record, so a store that keeps one
object per ticker applies it to ``Progress.of(ticker, record)``. The state types and queries live in
``state``, the JSON shape (``backfill/progress.json``, a public contract) in ``progress_codec``; both
are re-exported here, the one import callers need.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from stockpipe.backfill.plan import ONE_DAY, backfill_range, count_chunks
from stockpipe.backfill.progress_codec import VERSION, ProgressFormatError, from_json, to_json
from stockpipe.backfill.state import (
    ClaimRejected,
    Lease,
    Progress,
    TickerProgress,
    Work,
    chunks_left,
    is_pending_chunk,
    lease_expiry_of,
    lease_is_live,
    next_work,
    summarize,
    ticker_state,
)
from stockpipe.errors import FailureKind, clean_message, parks_at_once

if TYPE_CHECKING:
    from stockpipe.backfill.steps import StepOutcome

__all__ = [
    "MAX_ERROR_CHARS",
    "VERSION",
    "ClaimRejected",
    "Lease",
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
    "ticker_state",
    "to_json",
]

MAX_ERROR_CHARS = 300


# ---------------------------------------------------------------- transitions


def claim(progress: Progress, work: Work, *, owner: str, now: datetime, lease_seconds: float) -> Progress:
    """Lease ``work`` for ``owner``; ClaimRejected when it is no longer the ticker's next step."""
    record = progress.get(work.ticker)
    if record is not None and lease_is_live(record, now, owner):
        raise ClaimRejected(f"{work.ticker} is leased by another run until {record.lease.expires}")  # type: ignore[union-attr]
    if record is not None and (record.done or record.parked):
        raise ClaimRejected(f"{work.ticker} is {'done' if record.done else 'parked'}")
    if work.kind == "metadata":
        if record is not None and record.planned:
            raise ClaimRejected(f"{work.ticker} already has its plan")
    elif record is None or not record.planned or not is_pending_chunk(record, work.start, work.end):
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


def record_metadata(
    progress: Progress,
    ticker: str,
    first_date: date | None,
    *,
    backfill_start: date,
    plan_day: date,
    requests: int,
    owner: str,
    now: datetime,
    last_date: date | None = None,
) -> Progress:
    """Fix the ticker's range from Tiingo's first and last dates; no prices before plan_day -> done.

    A ticker with nothing to fetch keeps ``end`` = its last price (or plan_day), so that a start date
    moved earlier later on knows where its history stops.
    """
    record = progress.get(ticker) or TickerProgress()
    lease = _drop_own_lease(record, owner)
    if record.planned:  # another run planned it first: keep that plan
        return progress.with_ticker(ticker, replace(record, lease=lease, requests=record.requests + requests))
    span = backfill_range(backfill_start, first_date, plan_day, last_date)
    planned = replace(
        record,
        start=span[0] if span else None,
        end=span[1] if span else min(plan_day, last_date or plan_day),
        next_start=span[0] if span else None,
        fetched_from=None,
        done=span is None,
        attempts=0,
        last_error=None,
        parked=False,
        first_date=first_date,
        planned=True,
        lease=lease,
        requests=record.requests + requests,
        updated_at=now,
    )
    return progress.with_ticker(ticker, planned)


def extend_history(
    progress: Progress, tickers: Iterable[str], *, backfill_start: date, now: datetime
) -> Progress:
    """Plan the days a start date moved earlier adds to planned tickers (a done ticker is re-opened).

    Only the missing earlier range is added: what is fetched stays fetched, and a start moved later
    changes nothing. The days before the ticker's first price in Tiingo (``first_date``) are never
    planned; a ticker without prices stays done.
    """
    for ticker in tickers:
        record = progress.get(ticker)
        if record is None or not record.planned or record.first_date is None or record.end is None:
            continue
        target = max(backfill_start, record.first_date)
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


def record_chunk(
    progress: Progress,
    ticker: str,
    start: date,
    end: date,
    *,
    rows: int,
    requests: int,
    owner: str,
    now: datetime,
) -> Progress:
    """A chunk the scraper reported as written: grow the fetched range by it (idempotent).

    When the ticker already moved past this chunk (another run did it, or it was reset) only the
    request count is added: redoing a chunk is harmless because the scraper upserts.
    """
    record = progress.get(ticker)
    if record is None:
        return progress
    lease = _drop_own_lease(record, owner)
    updated = replace(record, lease=lease, requests=record.requests + requests, updated_at=now)
    if record.planned and not record.done and record.end is not None and is_pending_chunk(record, start, end):
        next_start, fetched_from = record.next_start, record.fetched_from
        if next_start is not None:  # the days after the fetched range
            following = end + ONE_DAY
            next_start = None if following > record.end else following
        else:  # the days before it (an extended history), walked backwards
            assert record.start is not None
            fetched_from = None if start <= record.start else start
        updated = replace(
            updated,
            next_start=next_start,
            fetched_from=fetched_from,
            done=next_start is None and fetched_from is None,
            attempts=0,
            last_error=None,
            chunks_done=record.chunks_done + 1,
            rows=record.rows + rows,
        )
    return progress.with_ticker(ticker, updated)


def record_empty_chunk(
    progress: Progress,
    ticker: str,
    start: date,
    end: date,
    *,
    requests: int,
    owner: str,
    now: datetime,
    max_attempts: int,
) -> Progress:
    """Tiingo answered ``[]`` for a chunk that has trading days.

    Usually a glitch, so the chunk is redone by later runs; after ``max_attempts`` it is accepted as a
    gap in Tiingo's data (noted in ``last_error``) instead of parking the ticker, so later chunks load.
    """
    record = progress.get(ticker)
    if record is None:
        return progress
    message = f"no rows for the trading days of {start}..{end}"
    if record.attempts + 1 < max_attempts:
        return record_failure(
            progress,
            ticker,
            kind=FailureKind.EMPTY,
            message=message,
            requests=requests,
            owner=owner,
            now=now,
            max_attempts=max_attempts,
        )
    accepted = record_chunk(progress, ticker, start, end, rows=0, requests=requests, owner=owner, now=now)
    updated = accepted.get(ticker)
    if updated is None or updated.chunks_done == record.chunks_done:
        return accepted  # another run had already moved past this chunk
    note = f"{FailureKind.EMPTY}: {message}; accepted as a gap after {max_attempts} attempts"
    return accepted.with_ticker(ticker, replace(updated, last_error=note))


def record_failure(
    progress: Progress,
    ticker: str,
    *,
    kind: str,
    message: str,
    requests: int,
    owner: str,
    now: datetime,
    max_attempts: int,
    count_attempt: bool = True,
) -> Progress:
    """A failed step: count the attempt, park after ``max_attempts`` (or at once for an unknown ticker).

    ``count_attempt=False`` is for failures that are not the ticker's fault (quota, bad token, no
    network): they are recorded but never park a ticker. The message is scrubbed before it is cut.
    """
    record = progress.get(ticker) or TickerProgress()
    attempts = record.attempts + (1 if count_attempt else 0)
    parked = record.parked or parks_at_once(kind) or (count_attempt and attempts >= max_attempts)
    updated = replace(
        record,
        attempts=attempts,
        last_error=clean_message(f"{kind}: {message}", MAX_ERROR_CHARS),
        parked=parked,
        lease=_drop_own_lease(record, owner),
        requests=record.requests + requests,
        updated_at=now,
    )
    return progress.with_ticker(ticker, updated)


def apply_outcome(
    progress: Progress,
    outcome: StepOutcome,
    *,
    owner: str,
    now: datetime,
    max_attempts: int,
    backfill_start: date,
    plan_day: date,
) -> Progress:
    """What one finished step (metadata lookup or chunk) changes, as one transition of its ticker."""
    work = outcome.work
    if outcome.error_kind == FailureKind.EMPTY and work.start is not None and work.end is not None:
        return record_empty_chunk(
            progress,
            work.ticker,
            work.start,
            work.end,
            requests=outcome.requests,
            owner=owner,
            now=now,
            max_attempts=max_attempts,
        )
    if not outcome.ok:
        return record_failure(
            progress,
            work.ticker,
            kind=outcome.error_kind or FailureKind.ERROR,
            message=outcome.message,
            requests=outcome.requests,
            owner=owner,
            now=now,
            max_attempts=max_attempts,
            count_attempt=not outcome.stops_run,
        )
    if work.kind == "metadata":
        return record_metadata(
            progress,
            work.ticker,
            outcome.first_date,
            last_date=outcome.last_date,
            backfill_start=backfill_start,
            plan_day=plan_day,
            requests=outcome.requests,
            owner=owner,
            now=now,
        )
    assert work.start is not None
    assert work.end is not None
    return record_chunk(
        progress,
        work.ticker,
        work.start,
        work.end,
        rows=outcome.rows,
        requests=outcome.requests,
        owner=owner,
        now=now,
    )


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
    """Forget the tickers entirely: the next run reads metadata again and starts over."""
    for ticker in tickers:
        progress = progress.with_ticker(ticker, None)
    return progress


def _drop_own_lease(record: TickerProgress, owner: str) -> Lease | None:
    if record.lease is not None and record.lease.owner == owner:
        return None
    return record.lease
