"""Daily prices as Parquet, one object per ticker-year, plus each ticker's fetch times.

``prices/daily/ticker=<T>/year=<Y>/data.parquet`` under the store root (the dataset: see
``year_objects``) and ``prices/fetch-times/<T>.json`` beside it (see ``fetch_times``). Writes are upserts
through ``objectstore.compare_and_swap``, so concurrent writers of the same ticker-year never lose each
other's rows; the fetch-times object is updated the same way, after the year objects it describes.

Reading is strict: an object that is not Parquet, has other columns, unreadable
``stockpipe.adjusted_as_of`` metadata, null dates or rows of another year is a StoreError naming the
key and the cause. The caller fails that one ticker and never writes over the object, so a bad object
costs one ticker and stays as it is for a human to look at.

S3 requests of the daily catch-up per ticker: one GET of the current year's object and one PUT of it
(the corporate-action check is decided from that object's ``ticker_fetched_since`` in the usual case,
else one GET of the fetch-times object, remembered per process).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc

from stockpipe import fetch_times
from stockpipe.errors import PreconditionFailed, StoreError
from stockpipe.fetch_times import FetchTimes
from stockpipe.layout import PRICES_PREFIX, ticker_prefix
from stockpipe.layout import price_key as object_key
from stockpipe.logs import get_logger
from stockpipe.objectstore import DEFAULT_MAX_ATTEMPTS, ObjectStore, compare_and_swap
from stockpipe.prices import date_bounds, empty_table
from stockpipe.year_objects import (
    ADJUSTED_AS_OF,
    UnreadableObject,
    YearObject,
    adjusted_as_of_after,
    decode,
    encode,
    fetched_since,
    merge,
)

# Re-exported: the layout lives in layout.py, the object codec in year_objects.py.
__all__ = ["ADJUSTED_AS_OF", "PRICES_PREFIX", "Latest", "PriceStore", "YearObject", "encode", "merge"]
__all__ += ["object_key", "ticker_prefix"]

Latest = tuple[int, YearObject] | None  # a ticker's newest stored year and its object (None: nothing stored)
JSON = "application/json"

_log = get_logger("pricestore")


class PriceStore:
    def __init__(
        self,
        store: ObjectStore,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.max_attempts = max_attempts
        self.sleep = sleep
        # Per process: lower bounds of each ticker's fetch times, and the version to compare-and-swap on.
        self._fetch_times: dict[str, FetchTimes] = {}

    # ---- year objects ------------------------------------------------------------------------------

    def read_year(self, ticker: str, year: int) -> YearObject:
        """The object of ticker-year (empty when absent); StoreError naming the key when unreadable."""
        key = object_key(ticker, year)
        stored = self.store.get(key)
        if stored is None:
            return YearObject(empty_table(), None, None)
        try:
            return decode(stored.body, year, stored.version)
        except UnreadableObject as exc:
            raise StoreError(f"cannot read {self.store.describe(key)}: {exc}") from None

    def years(self, ticker: str) -> list[int]:
        prefix = ticker_prefix(ticker)
        found = set()
        for key in self.store.list_keys(prefix):
            part = key[len(prefix) :].split("/", 1)[0]
            if part.startswith("year=") and part[5:].isdigit():
                found.add(int(part[5:]))
        return sorted(found)

    def read_ticker(self, ticker: str) -> pa.Table:
        tables = [self.read_year(ticker, year).table for year in self.years(ticker)]
        return pa.concat_tables(tables) if tables else empty_table()

    def latest(self, ticker: str, *, year_hint: int | None = None) -> Latest:
        """The newest non-empty year object, or None when nothing is stored.

        ``year_hint`` (the current year, for the daily run) is tried first: one GET instead of LIST + GET.
        """
        if year_hint is not None:
            obj = self.read_year(ticker, year_hint)
            if obj.table.num_rows:
                return year_hint, obj
        for year in reversed(self.years(ticker)):
            obj = self.read_year(ticker, year)
            if obj.table.num_rows:
                return year, obj
        return None

    def last_date(self, ticker: str) -> date | None:
        latest = self.latest(ticker)
        return latest[1].last_date if latest else None

    def first_date(self, ticker: str) -> date | None:
        for year in self.years(ticker):
            obj = self.read_year(ticker, year)
            if obj.first_date is not None:
                return obj.first_date
        return None

    # ---- fetch times -------------------------------------------------------------------------------

    def fetch_times(self, ticker: str, *, fresh: bool = False) -> FetchTimes:
        """The ticker's fetch times: remembered, else one GET (rebuilt when missing or unreadable)."""
        if not fresh and ticker in self._fetch_times:
            return self._fetch_times[ticker]
        key = fetch_times.key(ticker)
        stored = self.store.get(key)
        try:
            if stored is None:
                raise ValueError("missing")
            times = FetchTimes(fetch_times.decode(stored.body, ticker), stored.version)
        except ValueError as exc:
            times = self._rebuild_fetch_times(ticker, stored.version if stored else None, str(exc))
        self._fetch_times[ticker] = times
        return times

    def oldest_fetch(self, ticker: str) -> datetime | None:
        """When the oldest stored row of ticker was fetched (None: nothing stored); a lower bound."""
        return self.fetch_times(ticker).oldest()

    def forget(self, ticker: str) -> None:
        """Drop what is remembered of ticker: the next question reads the fetch-times object again."""
        self._fetch_times.pop(ticker, None)

    def needs_history_rewrite(
        self, ticker: str, newest_event: date | None, known: Mapping[int, YearObject]
    ) -> bool:
        """A split/dividend dated on or after the day some stored rows were fetched makes their adj_* stale.

        Historical events (met while backfilling old chunks) predate every stored fetch and trigger
        nothing: Tiingo's current adjusted values already include them. Decided from the ``known``
        objects' stamp when it suffices, else from the fetch times; a "yes" from remembered fetch times
        is confirmed with a fresh read (another process may have rewritten the history meanwhile).
        """
        if newest_event is None:
            return False
        since = fetched_since(known.values())
        if since is not None and newest_event < since.date():
            return False
        remembered = ticker in self._fetch_times
        oldest = self.fetch_times(ticker).oldest()
        if oldest is not None and newest_event >= oldest.date() and remembered:
            oldest = self.fetch_times(ticker, fresh=True).oldest()
        return oldest is not None and newest_event >= oldest.date()

    def _rebuild_fetch_times(self, ticker: str, version: str | None, why: str) -> FetchTimes:
        """From the year objects (LIST + one GET each), written back when there is anything to record."""
        by_year = {}
        for year in self.years(ticker):
            obj = self.read_year(ticker, year)
            if obj.table.num_rows and obj.adjusted_as_of is not None:
                by_year[year] = obj.adjusted_as_of
        if not by_year:
            return FetchTimes({}, version)
        key = fetch_times.key(ticker)
        _log.info("fetch times rebuilt from the year objects", extra={"ticker": ticker, "reason": why})
        try:
            version = self.store.put(
                key, fetch_times.encode(ticker, by_year), expected_version=version, content_type=JSON
            )
        except PreconditionFailed:
            return FetchTimes(by_year, None)  # another writer stored them first: ours are still lower bounds
        return FetchTimes(by_year, version)

    def _record_fetch_times(self, ticker: str, changes: Mapping[int, datetime]) -> None:
        key = fetch_times.key(ticker)

        def attempt(lost: int) -> FetchTimes:
            times = self.fetch_times(ticker, fresh=lost > 0)
            entries = times.updated(changes)
            if entries is None:
                return times
            body = fetch_times.encode(ticker, entries)
            return FetchTimes(
                entries, self.store.put(key, body, expected_version=times.version, content_type=JSON)
            )

        what = self.store.describe(key)
        self._fetch_times[ticker] = compare_and_swap(
            attempt, what=what, max_attempts=self.max_attempts, sleep=self.sleep
        )

    # ---- writes ------------------------------------------------------------------------------------

    def upsert(
        self,
        ticker: str,
        table: pa.Table,
        *,
        fetched_at: datetime,
        known: Mapping[int, YearObject] | None = None,
    ) -> int:
        """Store ``table``'s rows (any years) for ticker; returns the number of rows upserted.

        ``known`` holds year objects the caller has just read: the first compare-and-swap attempt uses
        them instead of reading again (a stale one only costs a 412 and a re-read), and their stamp
        spares the fetch-times read. The fetch-times object is written only when a year's entry changes
        (a new year, or every row of a year replaced), after the year objects.
        """
        bounds = date_bounds(table)
        if bounds is None:
            return 0
        known = known or {}
        since = fetched_since(known.values())
        if since is None:
            since = self.fetch_times(ticker).oldest()
        stamp = fetched_at if since is None else min(since, fetched_at)
        if bounds[0].year == bounds[1].year:
            parts = [(bounds[0].year, table)]
        else:
            years = pc.year(table.column("date"))
            parts = [(year, table.filter(pc.equal(years, year))) for year in pc.unique(years).to_pylist()]
        changes: dict[int, datetime] = {}
        for year, rows in parts:
            written = self._upsert_year(ticker, year, rows, fetched_at, known.get(year), stamp)
            if written is not None:
                changes[year] = written
        if changes:
            self._record_fetch_times(ticker, changes)
        return table.num_rows

    def _upsert_year(
        self,
        ticker: str,
        year: int,
        rows: pa.Table,
        fetched_at: datetime,
        known: YearObject | None,
        stamp: datetime,
    ) -> datetime | None:
        """Write one year; the new ``adjusted_as_of`` when it differs from the stored one, else None."""
        key = object_key(ticker, year)

        def attempt(lost: int) -> datetime | None:
            current = known if known is not None and lost == 0 else self.read_year(ticker, year)
            merged = merge(current.table, rows)
            if current is known and _unchanged(current, merged):
                current = self.read_year(ticker, year)  # the caller's copy may be stale: confirm first
                merged = merge(current.table, rows)
            if _unchanged(current, merged):
                return None  # same rows already stored: no new object version
            as_of = adjusted_as_of_after(current, rows, fetched_at)
            self.store.put(key, encode(merged, as_of, stamp), expected_version=current.version)
            return as_of if current.version is None or as_of != current.adjusted_as_of else None

        what = self.store.describe(key)
        return compare_and_swap(attempt, what=what, max_attempts=self.max_attempts, sleep=self.sleep)


def _unchanged(current: YearObject, merged: pa.Table) -> bool:
    return current.version is not None and merged.equals(current.table)
