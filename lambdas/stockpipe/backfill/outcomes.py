"""What a finished step changes: pure transitions ``(state, outcome) -> state`` for one ticker.

The rules, in the order ``apply_outcome`` applies them:

- **Rows for a range**: the range is fetched (``record_chunk``). A ticker's first answer also fixes its
  plan, ``[BACKFILL_START_DATE, plan day]``; the first day with a price in the answer is its
  ``first_date`` (while Tiingo's metadata is not read: the first day seen so far).
- **No rows for trading days** (``empty``) is ambiguous: a glitch, or no prices there (before a listing,
  after a delisting). While Tiingo's metadata is unread it decides: ``metadata`` becomes ``"due"``, the
  next step reads it (``record_metadata``): the pending range is cut to Tiingo's first and last dates
  (a ticker with no price in its range is done), and whatever the metadata says has prices is asked
  again. With the metadata read, an empty answer is a glitch (``record_empty_chunk``): retried, and
  accepted as a gap in Tiingo's data after ``max_attempts``.
- **A failed request of several chunks** is split (``record_split``): the ticker's next request covers at
  most half as many chunks (``max_chunks``), down to one chunk, so one bad span cannot block the rest and
  a fault costs a few requests, not one per chunk. Only a failed single chunk counts as an attempt
  (parked after ``max_attempts``). Each success doubles ``max_chunks`` again (no limit once it covers
  what is left).
- Failures that are not the ticker's fault (``errors.stops_run``) are recorded but never counted; a
  ticker Tiingo does not know (``not_found``) is parked at once.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from stockpipe.backfill.plan import ONE_DAY, backfill_range
from stockpipe.backfill.state import Lease, Planning, Progress, TickerProgress, chunks_left, is_pending_chunk
from stockpipe.errors import FailureKind, clean_message, parks_at_once, stops_run

if TYPE_CHECKING:
    from stockpipe.backfill.steps import StepOutcome

MAX_ERROR_CHARS = 300


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
    chunks: int = 1,
    first_seen: date | None = None,
) -> Progress:
    """A range the scraper reported as written: grow the fetched range by it (idempotent).

    When the ticker already moved past this range (another run did it, or it was reset) only the
    request count is added: redoing a range is harmless because the scraper upserts.
    """
    record = progress.get(ticker)
    if record is None:
        return progress
    updated = _step_ended(record, owner=owner, requests=requests, now=now)
    if record.planned and not record.done and record.end is not None and is_pending_chunk(record, start, end):
        next_start, fetched_from = record.next_start, record.fetched_from
        if next_start is not None:  # the days after the fetched range
            following = end + ONE_DAY
            next_start = None if following > record.end else following
        else:  # the days before it (an extended history), walked backwards
            assert record.start is not None
            fetched_from = None if start <= record.start else start
        first_date = record.first_date
        if record.metadata != "read" and first_seen is not None:
            first_date = min(first_date or first_seen, first_seen)
        updated = replace(
            updated,
            next_start=next_start,
            fetched_from=fetched_from,
            done=next_start is None and fetched_from is None,
            attempts=0,
            last_error=None,
            chunks_done=record.chunks_done + chunks,
            rows=record.rows + rows,
            first_date=first_date,
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
    """Tiingo answered ``[]`` for a chunk with trading days although its metadata says it has prices.

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
    updated = _step_ended(
        record,
        owner=owner,
        requests=requests,
        now=now,
        attempts=attempts,
        last_error=clean_message(f"{kind}: {message}", MAX_ERROR_CHARS),
        parked=parked,
    )
    return progress.with_ticker(ticker, updated)


def record_split(
    progress: Progress,
    ticker: str,
    *,
    kind: str,
    message: str,
    chunks: int,
    requests: int,
    owner: str,
    now: datetime,
) -> Progress:
    """A failed request of ``chunks`` > 1 chunks: the next one covers at most half (not an attempt)."""
    record = progress.get(ticker) or TickerProgress()
    limit = max(1, chunks // 2)
    note = f"{kind}: {message} (a request of {chunks} chunks; the next covers at most {limit})"
    updated = _step_ended(
        record,
        owner=owner,
        requests=requests,
        now=now,
        max_chunks=limit,
        last_error=clean_message(note, MAX_ERROR_CHARS),
    )
    return progress.with_ticker(ticker, updated)


def record_metadata_due(
    progress: Progress, ticker: str, start: date, end: date, *, requests: int, owner: str, now: datetime
) -> Progress:
    """No rows for the trading days of ``[start, end]`` and Tiingo's metadata unread: it decides next."""
    record = progress.get(ticker) or TickerProgress()
    note = f"{FailureKind.EMPTY}: no rows for the trading days of {start}..{end}; Tiingo's metadata decides"
    updated = _step_ended(record, owner=owner, requests=requests, now=now, metadata="due", last_error=note)
    return progress.with_ticker(ticker, updated)


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
    """Tiingo's first and last dates: the range is cut to them, and ``metadata`` is ``"read"``.

    A ticker with nothing fetched yet is planned on ``[max(start, first), min(end, last)]`` (no price in
    it: done, keeping ``end`` = its last price or the plan day, so that a start date moved earlier later
    on knows where its history stops). One with fetched days keeps them and loses only pending days
    outside Tiingo's range. Already read (another run did it): only the requests are added.
    """
    record = progress.get(ticker) or TickerProgress()
    base = _step_ended(record, owner=owner, requests=requests, now=now)
    if record.metadata == "read":
        return progress.with_ticker(ticker, base)
    read = replace(base, metadata="read", first_date=first_date, attempts=0, last_error=None)
    fetched = record.planned and (record.next_start != record.start or record.fetched_from is not None)
    if not fetched:
        start = record.start if record.planned and record.start is not None else backfill_start
        end = max(record.end or plan_day, plan_day)
        span = backfill_range(start, first_date, end, last_date)
        planned = replace(
            read,
            start=span[0] if span else None,
            end=span[1] if span else min(end, last_date or end),
            next_start=span[0] if span else None,
            fetched_from=None,
            done=span is None,
            parked=False,
            planned=True,
            max_chunks=0,
        )
        return progress.with_ticker(ticker, planned)
    if first_date is None:  # Tiingo says "no prices" for a ticker we fetched rows of: keep what we know
        return progress.with_ticker(ticker, replace(read, first_date=record.first_date))
    return progress.with_ticker(ticker, _cut_to(read, first_date, last_date))


def _cut_to(record: TickerProgress, first: date, last: date | None) -> TickerProgress:
    """The record with its pending days outside ``[first, last]`` dropped (fetched days are kept)."""
    start, end, next_start, fetched_from = record.start, record.end, record.next_start, record.fetched_from
    if next_start is not None and last is not None:
        if last < next_start:  # nothing after the fetched range: it ends the plan
            end, next_start = next_start - ONE_DAY, None
        else:
            end = min(end, last) if end else end
    if fetched_from is not None and start is not None:
        if first >= fetched_from:  # nothing before the fetched range
            start, fetched_from = fetched_from, None
        else:
            start = max(start, first)
    return replace(
        record,
        start=start,
        end=end,
        next_start=next_start,
        fetched_from=fetched_from,
        done=next_start is None and fetched_from is None,
    )


def apply_outcome(
    progress: Progress,
    outcome: StepOutcome,
    *,
    owner: str,
    now: datetime,
    max_attempts: int,
    planning: Planning,
) -> Progress:
    """What one finished step (metadata lookup or request) changes, as one transition of its ticker."""
    work, record = outcome.work, progress.get(outcome.work.ticker)
    common = {"requests": outcome.requests, "owner": owner, "now": now}
    if work.kind == "metadata" and outcome.ok:
        return record_metadata(
            progress,
            work.ticker,
            outcome.first_date,
            last_date=outcome.last_date,
            backfill_start=planning.backfill_start,
            plan_day=planning.plan_day,
            **common,  # type: ignore[arg-type]
        )
    kind = outcome.error_kind or FailureKind.ERROR
    if not outcome.ok and (work.kind == "metadata" or stops_run(kind) or parks_at_once(kind)):
        return record_failure(
            progress, work.ticker, kind=kind, message=outcome.message, max_attempts=max_attempts,
            count_attempt=not stops_run(kind), **common,  # type: ignore[arg-type]
        )  # fmt: skip
    assert work.start is not None
    assert work.end is not None
    if kind == FailureKind.EMPTY and (record is None or record.metadata != "read"):
        return record_metadata_due(progress, work.ticker, work.start, work.end, **common)  # type: ignore[arg-type]
    if not outcome.ok and work.chunks > 1:
        return record_split(
            progress,
            work.ticker,
            kind=kind,
            message=outcome.message,
            chunks=work.chunks,
            **common,  # type: ignore[arg-type]
        )
    if kind == FailureKind.EMPTY:
        return record_empty_chunk(
            progress,
            work.ticker,
            work.start,
            work.end,
            max_attempts=max_attempts,
            **common,  # type: ignore[arg-type]
        )
    if not outcome.ok:
        return record_failure(
            progress,
            work.ticker,
            kind=kind,
            message=outcome.message,
            max_attempts=max_attempts,
            **common,  # type: ignore[arg-type]
        )
    if record is None or not record.planned:
        progress = progress.with_ticker(
            work.ticker, _blind_plan(record, work.start, work.end, planning.plan_day)
        )
    recorded = record_chunk(
        progress,
        work.ticker,
        work.start,
        work.end,
        rows=outcome.rows,
        chunks=work.chunks,
        first_seen=outcome.first_date,
        **common,  # type: ignore[arg-type]
    )
    return _widen(recorded, work.ticker, planning.chunk_months)


def _blind_plan(record: TickerProgress | None, start: date, end: date, plan_day: date) -> TickerProgress:
    """The plan a first answer fixes: from the range's start to the plan day (Tiingo's dates unread)."""
    base = record or TickerProgress()
    return replace(
        base, planned=True, start=start, end=max(end, plan_day), next_start=start, fetched_from=None
    )


def _widen(progress: Progress, ticker: str, chunk_months: int) -> Progress:
    """After a success: a split ticker's requests may cover twice as many chunks (no limit once enough)."""
    record = progress.get(ticker)
    if record is None or not record.max_chunks or record.attempts:
        return progress
    doubled = record.max_chunks * 2
    left = chunks_left(record, chunk_months) or 0
    return progress.with_ticker(ticker, replace(record, max_chunks=0 if doubled >= left else doubled))


def _step_ended(
    record: TickerProgress, *, owner: str, requests: int, now: datetime, **changes: Any
) -> TickerProgress:
    """``record`` after one of ``owner``'s steps: its lease given back, its requests counted, ``changes``."""
    return replace(
        record,
        lease=_drop_own_lease(record, owner),
        requests=record.requests + requests,
        updated_at=now,
        **changes,
    )


def _drop_own_lease(record: TickerProgress, owner: str) -> Lease | None:
    if record.lease is not None and record.lease.owner == owner:
        return None
    return record.lease
