"""Daily prices as Parquet, one object per ticker-year: the dataset's public layout.

``prices/daily/ticker=<T>/year=<Y>/data.parquet`` under the store root, schema ``PRICE_SCHEMA``, rows
sorted and unique by date, zstd. Writes are upserts done as compare-and-swap loops, so concurrent writers
of the same ticker-year never lose each other's rows.
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stockpipe.errors import PreconditionFailed, StoreError
from stockpipe.layout import PRICES_PREFIX, ticker_prefix
from stockpipe.layout import price_key as object_key
from stockpipe.objectstore import ObjectStore
from stockpipe.prices import PRICE_SCHEMA, date_bounds, empty_table, normalize

# Parquet key-value metadata: when the oldest rows of the object were fetched. Tiingo restates adjusted
# columns after each split/dividend, so rows fetched before an event carry stale adj_* values.
ADJUSTED_AS_OF = b"stockpipe.adjusted_as_of"


__all__ = ["PRICES_PREFIX", "object_key", "ticker_prefix"]  # re-exported: the layout lives in layout.py


def merge(stored: pa.Table, new: pa.Table) -> pa.Table:
    """Upsert: rows of ``new`` replace stored rows of the same date; other stored rows are kept."""
    if stored.num_rows == 0:
        return normalize(new)
    if new.num_rows == 0:
        return stored
    kept = stored.filter(pc.invert(pc.is_in(stored.column("date"), value_set=new.column("date"))))
    return normalize(pa.concat_tables([kept, new]))


def encode(table: pa.Table, adjusted_as_of: datetime) -> bytes:
    table = table.replace_schema_metadata({ADJUSTED_AS_OF: adjusted_as_of.isoformat().encode()})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


@dataclass(frozen=True)
class YearObject:
    table: pa.Table
    adjusted_as_of: datetime | None
    version: str | None

    @property
    def last_date(self) -> date | None:
        bounds = date_bounds(self.table)
        return bounds[1] if bounds else None


Latest = tuple[int, YearObject] | None  # a ticker's newest stored year and its object (None: nothing stored)


def decode(body: bytes, version: str | None = None) -> YearObject:
    # ParquetFile.read: a plain file read, without read_table's dataset machinery (~2.5x faster here).
    table = pq.ParquetFile(io.BytesIO(body)).read()
    raw = (table.schema.metadata or {}).get(ADJUSTED_AS_OF)
    as_of = datetime.fromisoformat(raw.decode()) if raw else None
    table = table.replace_schema_metadata(None)
    if not table.schema.equals(PRICE_SCHEMA):
        table = table.cast(PRICE_SCHEMA)  # e.g. a file written by another tool: same columns, other types
    return YearObject(table, as_of, version)


class PriceStore:
    def __init__(
        self,
        store: ObjectStore,
        *,
        max_attempts: int = 20,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.max_attempts = max_attempts
        self.sleep = sleep
        self._oldest_fetch: dict[str, datetime | None] = {}

    def read_year(self, ticker: str, year: int) -> YearObject:
        stored = self.store.get(object_key(ticker, year))
        if stored is None:
            return YearObject(empty_table(), None, None)
        return decode(stored.body, stored.version)

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
            table = self.read_year(ticker, year).table
            if table.num_rows:
                return pc.min(table.column("date")).as_py()
        return None

    def oldest_fetch(self, ticker: str) -> datetime | None:
        """When the oldest stored row of ticker was fetched (None: nothing stored).

        Reading it means reading every year object, so it is remembered per process. Stored fetch times
        only ever move forward (new writes are fetched now; a rewrite replaces old rows), so a remembered
        value is a lower bound: at worst it causes one extra history rewrite, never a missed one.
        """
        if ticker not in self._oldest_fetch:
            oldest: datetime | None = None
            for year in self.years(ticker):
                as_of = self.read_year(ticker, year).adjusted_as_of
                if as_of and (oldest is None or as_of < oldest):
                    oldest = as_of
            self._oldest_fetch[ticker] = oldest
        return self._oldest_fetch[ticker]

    def forget(self, ticker: str) -> None:
        """Drop what is remembered of ticker (after its history was rewritten)."""
        self._oldest_fetch.pop(ticker, None)

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
        them instead of reading again (a stale one only costs a 412 and a re-read).
        """
        if table.num_rows == 0:
            return 0
        known = known or {}
        years = pc.year(table.column("date"))
        for year in pc.unique(years).to_pylist():
            rows = table.filter(pc.equal(years, year))
            self._upsert_year(ticker, year, rows, fetched_at, known.get(year))
        if ticker in self._oldest_fetch and self._oldest_fetch[ticker] is None:
            self._oldest_fetch[ticker] = fetched_at
        return table.num_rows

    def _upsert_year(
        self, ticker: str, year: int, rows: pa.Table, fetched_at: datetime, known: YearObject | None
    ) -> None:
        key = object_key(ticker, year)
        for attempt in range(self.max_attempts):
            fresh = known is None or attempt > 0
            current = self.read_year(ticker, year) if fresh else known
            merged = merge(current.table, rows)
            if current.version is not None and merged.equals(current.table):
                if fresh:
                    return  # same rows already stored: no new object version
                continue  # the caller's copy may be stale: confirm against the store before skipping
            # The object is only as fresh as its oldest row that this write does not replace.
            keeps_older_rows = (
                current.table.num_rows > 0
                and not pc.all(pc.is_in(current.table.column("date"), value_set=rows.column("date"))).as_py()
            )
            as_of = fetched_at
            if keeps_older_rows and current.adjusted_as_of:
                as_of = min(current.adjusted_as_of, fetched_at)
            try:
                self.store.put(key, encode(merged, as_of), expected_version=current.version)
                return
            except PreconditionFailed:
                # Another writer updated the object: re-read, re-merge, try again (jittered backoff).
                self.sleep(random.uniform(0, min(1.0, 0.02 * 2**attempt)))
        raise StoreError(f"gave up writing {self.store.describe(key)} after {self.max_attempts} conflicts")
