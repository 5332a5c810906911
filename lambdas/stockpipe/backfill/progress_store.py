"""Backfill progress in the object store: one object per ticker, changed only through compare-and-swap.

``update(ticker, change)`` reads the ticker's object, applies a pure change to ``Progress.of(ticker,
record)`` and writes it with ``IfMatch``; on a lost race it re-reads and re-applies the change, so two
overlapping runs merge their outcomes instead of overwriting each other. A step therefore reads and
writes one small object, whatever the universe's size; with ``chunk_months`` the ticker's index entry
(``index_store``) follows. A ticker object that cannot be read is a StoreError naming the object and
the field; it blocks only that ticker, and it is never written over.

``load()`` reads every ticker (local tools and tests; the Lambda never needs it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from stockpipe.backfill import progress as prog
from stockpipe.backfill.index_store import IO_THREADS, IndexStore
from stockpipe.backfill.progress_codec import ticker_from_json, ticker_to_json
from stockpipe.backfill.versioned import DEFAULT_MAX_ATTEMPTS, Versioned
from stockpipe.errors import StoreError
from stockpipe.layout import BACKFILL_TICKERS_PREFIX, PROGRESS_KEY, ticker_progress_key
from stockpipe.objectstore import ObjectStore

__all__ = ["PROGRESS_KEY", "ProgressStore", "Stored"]

Stored = tuple[prog.TickerProgress | None, int]  # a ticker's record and its object's revision (0: none)


def _ticker(key: str) -> str:
    return key[len(BACKFILL_TICKERS_PREFIX) : -len(".json")]


class ProgressStore:
    def __init__(
        self,
        store: ObjectStore,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.max_attempts = max_attempts  # compare-and-swap: the same parameters as PriceStore's
        self.sleep = sleep
        self.objects: Versioned[Stored] = Versioned(
            store,
            decode=lambda key, body: ticker_from_json(body, _ticker(key)),
            encode=lambda key, value: ticker_to_json(_ticker(key), *value),
            empty=lambda key: (None, 0),
            max_attempts=max_attempts,
            sleep=sleep,
        )
        self.index = IndexStore(store, max_attempts=max_attempts, sleep=sleep)

    def read(self, ticker: str) -> Stored:
        """The ticker's record (None: none yet, or reset) and revision, read now."""
        return self.objects.get(ticker_progress_key(ticker))[0]

    def get(self, ticker: str) -> prog.TickerProgress | None:
        return self.read(ticker)[0]

    def update(
        self,
        ticker: str | Callable[[prog.Progress], prog.Progress],
        change: Callable[[prog.Progress], prog.Progress] | None = None,
        *,
        chunk_months: int | None = None,
        only_new: bool = False,
    ) -> Stored:
        """Apply ``change`` to the ticker atomically; exceptions from it (ClaimRejected) write nothing.

        ``update(change)`` (one argument: a change of the whole state) is what local tools and tests
        wrote before progress was kept per ticker: ``update_all``.

        ``chunk_months``: also bring the ticker's index entry up to date; ``only_new``: only when this
        gave the ticker a record (a lease alone changes nothing the index keeps, a new record does).
        """

        if change is None:
            assert callable(ticker)
            self.update_all(ticker)
            return None, 0
        assert isinstance(ticker, str)
        before: list[prog.TickerProgress | None] = []

        def apply(value: Stored) -> Stored:
            record, rev = value
            before[:] = [record]  # of the attempt that is written
            updated = change(prog.Progress.of(ticker, record)).get(ticker)
            return value if updated == record else (updated, rev + 1)

        (record, rev), written = self.objects.update(ticker_progress_key(ticker), apply)
        created = before == [None] and record is not None
        if written and chunk_months is not None and (created or not only_new):
            self.index.record(ticker, record, rev, chunk_months)
        return record, rev

    def update_all(self, change: Callable[[prog.Progress], prog.Progress]) -> prog.Progress:
        """A change of the whole state (local tools): applied to each ticker whose record it changes.

        Every transition changes one ticker, so each is re-applied to that ticker alone, atomically.
        O(universe) reads: for local data directories and tests, never the Lambda.
        """
        root, _ = self.index.root()
        chunk_months = root.synced.chunk_months if root.synced else 6
        loaded = self.load()
        changed = change(loaded)
        for ticker in sorted(set(loaded.tickers) | set(changed.tickers)):
            if changed.get(ticker) != loaded.get(ticker):  # re-applied to the ticker as it is now
                self.update(ticker, change, chunk_months=chunk_months)
        return changed

    def read_many(self, tickers: Iterable[str]) -> dict[str, Stored | StoreError]:
        """Each ticker's stored record, read in parallel; an unreadable object is its StoreError."""

        def one(ticker: str) -> tuple[str, Stored | StoreError]:
            try:
                return ticker, self.read(ticker)
            except StoreError as exc:
                return ticker, exc

        names = list(dict.fromkeys(tickers))
        with ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="progress") as pool:
            return dict(pool.map(one, names))

    def load(self, tickers: Iterable[str] | None = None) -> prog.Progress:
        """Every ticker's record (or those of ``tickers``); StoreError for an object that cannot be read.

        Before the first run of this version migrated it, the ``progress.json`` of earlier versions.
        """
        if not self.index.root()[1]:
            stored = self.store.get(PROGRESS_KEY)
            if stored is not None:
                try:
                    legacy = prog.from_json(stored.body)
                except ValueError as exc:
                    raise StoreError(f"{self.store.describe(PROGRESS_KEY)}: {exc}") from None
                names = set(tickers) if tickers is not None else set(legacy.tickers)
                return prog.Progress({t: r for t, r in legacy.tickers.items() if t in names})
        if tickers is None:
            tickers = [
                _ticker(key) for key in self.store.list_keys(BACKFILL_TICKERS_PREFIX) if key.endswith(".json")
            ]
        records: dict[str, prog.TickerProgress] = {}
        for ticker, stored in self.read_many(tickers).items():
            if isinstance(stored, StoreError):
                raise stored
            if stored[0] is not None:
                records[ticker] = stored[0]
        return prog.Progress(dict(sorted(records.items())))
