"""Backfill progress as plain immutable data plus pure transitions ``(state, outcome) -> state``.

Keeping every change a pure function is what makes the compare-and-swap store safe: on a lost race the
store re-reads the newer state and re-applies the same outcome, so overlapping runs never lose progress.
The JSON shape (``backfill/progress.json``) is a public contract; see ``to_json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal

from stockpipe.backfill.plan import ONE_DAY, backfill_range, count_chunks, next_chunk

VERSION = 1
NOT_FOUND = "not_found"
EMPTY = "empty"  # Tiingo answered [] for a range that has trading days
MAX_ERROR_CHARS = 300


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
    assert record.end is not None
    chunk = next_chunk(record.next_start, record.end, chunk_months)
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
    return count_chunks(record.next_start, record.end, chunk_months)


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
                start=_iso(record.start),
                end=_iso(record.end),
                next_start=_iso(record.next_start),
                first_date=_iso(record.first_date),
                attempts=record.attempts,
                last_error=record.last_error,
                chunks_done=record.chunks_done,
                rows=record.rows,
                leased_until=_iso(record.lease.expires) if record.lease else None,
            )
        tickers[name] = entry
    return {"tickers": tickers, "counts": counts, "chunks_left": total_left}


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
    elif record is None or not record.planned or record.next_start != work.start:
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
    """Fix the ticker's range from Tiingo's first and last dates; no prices before plan_day -> done."""
    record = progress.get(ticker) or TickerProgress()
    lease = _drop_own_lease(record, owner)
    if record.planned:  # another run planned it first: keep that plan
        return progress.with_ticker(ticker, replace(record, lease=lease, requests=record.requests + requests))
    span = backfill_range(backfill_start, first_date, plan_day, last_date)
    planned = replace(
        record,
        start=span[0] if span else None,
        end=span[1] if span else plan_day,
        next_start=span[0] if span else None,
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
    """A chunk the scraper reported as written: advance ``next_start`` past it (idempotent).

    When the ticker already moved past this chunk (another run did it, or it was reset) only the
    request count is added: redoing a chunk is harmless because the scraper upserts.
    """
    record = progress.get(ticker)
    if record is None:
        return progress
    lease = _drop_own_lease(record, owner)
    updated = replace(record, lease=lease, requests=record.requests + requests, updated_at=now)
    if record.planned and not record.done and record.next_start == start and record.end is not None:
        following = end + ONE_DAY
        done = following > record.end
        updated = replace(
            updated,
            next_start=None if done else following,
            done=done,
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
            kind=EMPTY,
            message=message,
            requests=requests,
            owner=owner,
            now=now,
            max_attempts=max_attempts,
        )
    accepted = record_chunk(progress, ticker, start, end, rows=0, requests=requests, owner=owner, now=now)
    updated = accepted.get(ticker)
    if updated is None or (updated.next_start == record.next_start and not updated.done):
        return accepted  # another run had already moved past this chunk
    note = f"{EMPTY}: {message}; accepted as a gap after {max_attempts} attempts"
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

    ``count_attempt=False`` is for failures that are not the ticker's fault (quota, bad token): they are
    recorded but never park a ticker.
    """
    record = progress.get(ticker) or TickerProgress()
    attempts = record.attempts + (1 if count_attempt else 0)
    parked = record.parked or kind == NOT_FOUND or (count_attempt and attempts >= max_attempts)
    error = f"{kind}: {message}"
    if len(error) > MAX_ERROR_CHARS:
        error = error[: MAX_ERROR_CHARS - 3] + "..."
    updated = replace(
        record,
        attempts=attempts,
        last_error=error,
        parked=parked,
        lease=_drop_own_lease(record, owner),
        requests=record.requests + requests,
        updated_at=now,
    )
    return progress.with_ticker(ticker, updated)


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


# ---------------------------------------------------------------- JSON


def to_json(progress: Progress) -> bytes:
    """``{"version": 1, "tickers": {T: {...}}}``, tickers sorted so unchanged state is byte-identical."""
    tickers = {name: _record_to_dict(progress.tickers[name]) for name in sorted(progress.tickers)}
    return json.dumps({"version": VERSION, "tickers": tickers}, indent=1).encode()


def from_json(body: bytes | str) -> Progress:
    """Parse progress.json; ValueError naming the field for anything malformed."""
    try:
        data = json.loads(body)
    except ValueError:
        raise ValueError("progress is not valid JSON") from None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise ValueError(f"progress must be an object with version {VERSION}")
    raw = data.get("tickers", {})
    if not isinstance(raw, dict):
        raise ValueError("progress 'tickers' must be an object")
    return Progress({str(name): _record_from_dict(name, value) for name, value in raw.items()})


def _record_to_dict(record: TickerProgress) -> dict[str, Any]:
    lease = record.lease
    return {
        "start": _iso(record.start),
        "end": _iso(record.end),
        "next_start": _iso(record.next_start),
        "done": record.done,
        "attempts": record.attempts,
        "last_error": record.last_error,
        "parked": record.parked,
        "first_date": _iso(record.first_date),
        "updated_at": _iso(record.updated_at),
        "planned": record.planned,
        "lease": None
        if lease is None
        else {
            "owner": lease.owner,
            "expires": lease.expires.isoformat(),
            "start": _iso(lease.start),
            "end": _iso(lease.end),
        },
        "chunks_done": record.chunks_done,
        "rows": record.rows,
        "requests": record.requests,
    }


def _record_from_dict(name: str, value: Any) -> TickerProgress:
    if not isinstance(value, dict):
        raise ValueError(f"progress of {name} must be an object")
    try:
        lease_raw = value.get("lease")
        lease = None
        if lease_raw is not None:
            lease = Lease(
                owner=str(lease_raw["owner"]),
                expires=datetime.fromisoformat(lease_raw["expires"]),
                start=_date(lease_raw.get("start")),
                end=_date(lease_raw.get("end")),
            )
        updated = value.get("updated_at")
        return TickerProgress(
            start=_date(value.get("start")),
            end=_date(value.get("end")),
            next_start=_date(value.get("next_start")),
            done=bool(value.get("done", False)),
            attempts=int(value.get("attempts", 0)),
            last_error=value.get("last_error"),
            parked=bool(value.get("parked", False)),
            first_date=_date(value.get("first_date")),
            updated_at=datetime.fromisoformat(updated) if updated else None,
            # Records written without "planned" (by hand or an older version) are planned when dated.
            planned=bool(value.get("planned", value.get("end") is not None)),
            lease=lease,
            chunks_done=int(value.get("chunks_done", 0)),
            rows=int(value.get("rows", 0)),
            requests=int(value.get("requests", 0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"progress of {name} is malformed: {exc}") from None


def _date(value: Any) -> date | None:
    return None if value is None else date.fromisoformat(value)


def _iso(value: date | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return value.isoformat()


def lease_expiry_of(progress: Progress, tickers: Iterable[str], now: datetime) -> datetime | None:
    """The earliest time a live lease on one of ``tickers`` expires (runners wait for it)."""
    expiries = [
        record.lease.expires
        for name in tickers
        if (record := progress.get(name)) is not None and record.lease is not None
        if record.lease.expires > now and not record.done and not record.parked
    ]
    return min(expiries, default=None)
