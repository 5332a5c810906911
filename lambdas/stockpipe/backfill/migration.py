"""Bringing the index up to date before any entry point acts, and migrating the one-file progress once.

Earlier versions kept all progress in ``backfill/progress.json`` (version 1). The first entry point of
this version that finds no index root converts it: every record becomes ``backfill/tickers/<T>.json``
(revision 1; an object already there, from an interrupted conversion, is kept), the index is built from
the records, and the root is written last, so an interrupted conversion is simply done again. The file
is read strictly first: a file that cannot be read stops every entry point with one StoreError naming
it and the field, and nothing is written (it stays exactly as it is). It is never written or deleted.

``prepare`` also syncs the index when the stored universe, the start date or the chunk size changed
(``index_store.sync``): once after such a change, not per run.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from stockpipe.backfill import progress as prog
from stockpipe.backfill.index import Entry, Root, Synced, summary_of
from stockpipe.backfill.index_store import IO_THREADS
from stockpipe.backfill.progress_codec import ticker_to_json
from stockpipe.backfill.progress_store import ProgressStore
from stockpipe.backfill.settings import MAX_TICKERS, BackfillSettings
from stockpipe.errors import PreconditionFailed, StoreError
from stockpipe.layout import PROGRESS_KEY, UNIVERSE_KEY, ticker_progress_key
from stockpipe.logs import get_logger
from stockpipe.objectstore import StoredObject
from stockpipe.universe import parse_universe

log = get_logger("backfill")


def stored_universe(progress: ProgressStore, stored: StoredObject | None) -> list[str]:
    """``stored``, the universe object as read; ValueError naming it when missing, malformed or over
    MAX_TICKERS."""
    where = progress.store.describe(UNIVERSE_KEY)
    tickers = parse_universe(stored, where)
    check_size(tickers, f"the universe at {where}")
    return tickers


def check_size(tickers: list[str], what: str) -> None:
    if len(tickers) > MAX_TICKERS:
        raise ValueError(
            f"{what} has {len(tickers):,} tickers; the backfill orchestrator accepts at most {MAX_TICKERS:,}"
        )


def prepare(
    progress: ProgressStore, settings: BackfillSettings, now: datetime, *, strict: bool = True
) -> Root:
    """The index root, after migrating ``progress.json`` and syncing when needed.

    ``strict``: a missing or malformed universe is a ValueError (a run needs it); otherwise it counts
    as no universe (``status``, ``retry``, ``reset`` still answer). The universe is read once.
    """
    stored = progress.store.get(UNIVERSE_KEY)
    if strict and stored is None:
        stored_universe(progress, stored)  # the ValueError that names where the universe belongs
    version = None if stored is None else stored.version
    root, exists = progress.index.root()
    target = Synced(version, settings.start_date, settings.chunk_months)
    if exists and root.synced == target:
        return root
    try:
        universe = stored_universe(progress, stored) if stored is not None else []
    except ValueError:
        if strict:
            raise
        universe, version = [], None
    seed = None if exists else _migrate(progress)
    return progress.index.sync(
        universe,
        version,
        backfill_start=settings.start_date,
        chunk_months=settings.chunk_months,
        now=now,
        seed=seed,
    )


def _migrate(progress: ProgressStore) -> dict[str, Entry] | None:
    """Write one object per ticker of ``progress.json``; their index entries (None: no file)."""
    store = progress.store
    stored = store.get(PROGRESS_KEY)
    if stored is None:
        return None
    try:
        legacy = prog.from_json(stored.body)
    except ValueError as exc:
        raise StoreError(f"{store.describe(PROGRESS_KEY)}: {exc}") from None

    def write(item: tuple[str, prog.TickerProgress]) -> None:
        ticker, record = item
        body = ticker_to_json(ticker, record, 1)
        # an object already there was written by an earlier, interrupted conversion (or a concurrent one)
        with contextlib.suppress(PreconditionFailed):
            store.put(
                ticker_progress_key(ticker), body, expected_version=None, content_type="application/json"
            )

    with ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="migrate") as pool:
        list(pool.map(write, legacy.tickers.items()))
    log.info("backfill progress migrated", extra={"tickers": len(legacy.tickers), "from": PROGRESS_KEY})
    return {ticker: Entry(1, False, summary_of(record)) for ticker, record in legacy.tickers.items()}
