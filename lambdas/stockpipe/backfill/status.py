"""The ``{"action": "status"}`` answer: exact counts from the index root, details one page at a time.

Request (all keys but ``action`` optional): ``tickers`` (details of these, at most STATUS_MAX_LIMIT),
``state`` (only tickers in this state), ``limit`` (tickers per page, 1..STATUS_MAX_LIMIT, default
STATUS_LIMIT) and ``page`` (the ``page.next`` of the previous answer, to continue). Answer:

    {"action": "status", "counts": {...}, "chunks_left": n,
     "tickers": {T: {...}}, "page": {"limit": 100, "next": "3f:MSFT" | null, "total": n}}

``counts`` and ``chunks_left`` cover every ticker of the universe or with progress (exact, from the
root: no ticker object is read for them); ``tickers`` holds one page in index order (shard, then name),
each read from its object and shown as the next run will see it (a start date moved earlier already
counts); ``page.total`` is how many tickers match the request. So every answer stays below 1 MB (about
0.5 KB per ticker shown) whatever the universe's size. Costs no Tiingo request.
"""

from __future__ import annotations

from datetime import datetime

from stockpipe.backfill import progress as prog
from stockpipe.backfill.answers import StatusAnswer, StatusCounts, StatusTicker
from stockpipe.backfill.events import ActionEvent
from stockpipe.backfill.index import Entry, Root
from stockpipe.backfill.progress_store import ProgressStore
from stockpipe.backfill.settings import BackfillSettings
from stockpipe.errors import StoreError, clean_message


def status_answer(
    progress: ProgressStore, root: Root, event: ActionEvent, settings: BackfillSettings, now: datetime
) -> StatusAnswer:
    totals = root.total()
    counts = StatusCounts(
        done=totals.done, in_progress=totals.in_progress, parked=totals.parked, pending=totals.pending
    )
    answer = StatusAnswer(action="status", counts=counts, chunks_left=totals.chunks_left)
    following: tuple[str, str] | None = None
    if event.tickers:
        names = list(event.tickers)
        total = len(names)
    else:
        names, following = progress.index.listed(root, state=event.state, limit=event.limit, after=event.page)
        total = counts[event.state] if event.state else sum(counts.values())  # type: ignore[literal-required]
    stored = progress.read_many(names)
    # The index answers only what a ticker's object cannot: an unreadable one's state, an absent one's
    # existence. Its shards are read for those alone (a page's are read once, by ``listed``).
    entries = progress.index.entries(
        [n for n in names if isinstance(stored[n], StoreError) or stored[n][0] is None]
    )
    details: dict[str, StatusTicker] = {}
    unknown = []
    for name in names:
        value = stored[name]
        if isinstance(value, StoreError):
            details[name] = _unreadable(entries.get(name), value, settings.chunk_months)
            continue
        if value[0] is None and name not in entries:
            unknown.append(name)
        view = prog.extend_history(
            prog.Progress.of(name, value[0]), [name], backfill_start=settings.start_date, now=now
        ).get(name)
        details[name] = prog.ticker_detail(view, settings.chunk_months)  # type: ignore[assignment]
    answer["tickers"] = details
    answer["page"] = {
        "limit": event.limit,
        "next": f"{following[0]}:{following[1]}" if following else None,
        "total": total,
    }
    if event.tickers:
        answer["unknown"] = unknown
    return answer


def _unreadable(entry: Entry | None, error: StoreError, chunk_months: int) -> StatusTicker:
    """What the index knows of a ticker whose object cannot be read, and the error naming it."""
    summary = entry.summary if entry is not None else None
    return StatusTicker(
        state=prog.ticker_state(summary),
        chunks_left=prog.chunks_left(summary, chunk_months),
        error=clean_message(error, 500),
    )
