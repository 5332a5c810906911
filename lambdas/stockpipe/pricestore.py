"""Daily prices as Parquet, one object per ticker-year: the dataset's public layout.

``prices/daily/ticker=<T>/year=<Y>/data.parquet`` under the store root, schema ``PRICE_SCHEMA``, rows
sorted and unique by date, zstd. Writes are upserts through ``objectstore.compare_and_swap``, so
concurrent writers of the same ticker-year never lose each other's rows.

Reading is strict: an object that is not Parquet, has other columns, unreadable
``stockpipe.adjusted_as_of`` metadata, null dates or rows of another year is a StoreError naming the
key and the cause. The caller fails that one ticker and never writes over the object, so a bad object
costs one ticker and stays as it is for a human to look at.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stockpipe.errors import StoreError, clean_message
from stockpipe.layout import PRICES_PREFIX, ticker_prefix
from stockpipe.layout import price_key as object_key
from stockpipe.objectstore import DEFAULT_MAX_ATTEMPTS, ObjectStore, compare_and_swap
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


class UnreadableObject(ValueError):
    """What is wrong with a stored object, in our words: pyarrow's messages can quote stored values."""


def decode(body: bytes, year: int, version: str | None = None) -> YearObject:
    """A stored year object; UnreadableObject saying what is wrong with it (the caller names the key)."""
    try:
        # ParquetFile.read: a plain file read, without read_table's dataset machinery (~2.5x faster here).
        table = pq.ParquetFile(io.BytesIO(body)).read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise UnreadableObject(f"not a readable Parquet file ({type(exc).__name__})") from None
    as_of = _adjusted_as_of(table.schema.metadata or {})
    table = _as_price_schema(table.replace_schema_metadata(None))
    bounds = date_bounds(table)
    if bounds and not bounds[0].year == bounds[1].year == year:
        raise UnreadableObject(f"rows dated {bounds[0]}..{bounds[1]} in the object of year {year}")
    return YearObject(table, as_of, version)


def _adjusted_as_of(metadata: Mapping[bytes, bytes]) -> datetime | None:
    raw = metadata.get(ADJUSTED_AS_OF)
    if raw is None:
        return None  # e.g. written by another tool: no fetch time known
    try:
        as_of = datetime.fromisoformat(raw.decode())
    except (UnicodeDecodeError, ValueError):
        as_of = None
    if as_of is None or as_of.tzinfo is None:
        raise UnreadableObject(f"{ADJUSTED_AS_OF.decode()} metadata is not an ISO timestamp with a time zone")
    return as_of


def _as_price_schema(table: pa.Table) -> pa.Table:
    if table.schema.equals(PRICE_SCHEMA):
        return table
    names = set(table.column_names)
    extra = sorted(names - set(PRICE_SCHEMA.names))
    missing = [name for name in PRICE_SCHEMA.names if name not in names]
    problems = [
        f"{label} {', '.join(cols)}" for label, cols in (("unexpected", extra), ("missing", missing)) if cols
    ]
    if problems or len(names) != table.num_columns:
        found = clean_message("; ".join(problems) or "duplicate column names", 160)
        raise UnreadableObject(f"columns differ from the price schema ({found})")
    table = table.select(PRICE_SCHEMA.names)
    nulls = table.column("date").null_count
    if nulls:
        raise UnreadableObject(f"{nulls} row(s) without a date")
    try:  # e.g. written by another tool: the same columns with other types
        return table.cast(PRICE_SCHEMA)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        # pyarrow's message quotes the offending value: named by type only.
        raise UnreadableObject(f"columns cannot be read as the price schema ({type(exc).__name__})") from None


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
        self._oldest_fetch: dict[str, datetime | None] = {}

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

        def attempt(lost: int) -> None:
            current = known if known is not None and lost == 0 else self.read_year(ticker, year)
            merged = merge(current.table, rows)
            if current is known and _unchanged(current, merged):
                current = self.read_year(ticker, year)  # the caller's copy may be stale: confirm first
                merged = merge(current.table, rows)
            if _unchanged(current, merged):
                return  # same rows already stored: no new object version
            as_of = _adjusted_as_of_after(current, rows, fetched_at)
            self.store.put(key, encode(merged, as_of), expected_version=current.version)

        what = self.store.describe(key)
        compare_and_swap(attempt, what=what, max_attempts=self.max_attempts, sleep=self.sleep)


def _unchanged(current: YearObject, merged: pa.Table) -> bool:
    return current.version is not None and merged.equals(current.table)


def _adjusted_as_of_after(current: YearObject, rows: pa.Table, fetched_at: datetime) -> datetime:
    """The object is only as fresh as its oldest row that this write does not replace."""
    keeps_older_rows = (
        current.table.num_rows > 0
        and not pc.all(pc.is_in(current.table.column("date"), value_set=rows.column("date"))).as_py()
    )
    if keeps_older_rows and current.adjusted_as_of:
        return min(current.adjusted_as_of, fetched_at)
    return fetched_at
