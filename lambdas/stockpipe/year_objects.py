"""One ticker-year object of the dataset: its bytes, its rows, and the fetch times it carries.

Schema ``PRICE_SCHEMA``, rows sorted and unique by date, zstd, and two key-value metadata entries:

- ``stockpipe.adjusted_as_of``: when the object's oldest row was fetched. Tiingo restates adjusted
  columns after each split/dividend, so rows fetched before an event carry stale ``adj_*`` values;
- ``stockpipe.ticker_fetched_since``: a time at or before which *no* stored row of the ticker (in any
  year) was fetched, as known when this object was written. Fetch times only move forward, so it stays
  true: the daily catch-up, which reads this object anyway, decides most corporate-action checks with
  it and reads ``prices/fetch-times/<T>.json`` only when it cannot (see ``fetch_times``).

Reading is strict about what the dataset promises (``decode``): anything else is UnreadableObject, in our
words (pyarrow's messages can quote stored values). An unreadable ``ticker_fetched_since`` only loses
the shortcut: it is a hint, never data.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stockpipe.errors import clean_message
from stockpipe.prices import PRICE_SCHEMA, date_bounds, normalize

ADJUSTED_AS_OF = b"stockpipe.adjusted_as_of"
TICKER_FETCHED_SINCE = b"stockpipe.ticker_fetched_since"


@dataclass(frozen=True)
class YearObject:
    table: pa.Table
    adjusted_as_of: datetime | None
    version: str | None
    first_date: date | None = None
    last_date: date | None = None
    fetched_since: datetime | None = None  # the ticker-wide lower bound stamped into the object


class UnreadableObject(ValueError):
    """What is wrong with a stored object, in our words: pyarrow's messages can quote stored values."""


def merge(stored: pa.Table, new: pa.Table) -> pa.Table:
    """Upsert: rows of ``new`` replace stored rows of the same date; other stored rows are kept."""
    if stored.num_rows == 0:
        return normalize(new)
    if new.num_rows == 0:
        return stored
    kept = stored.filter(pc.invert(pc.is_in(stored.column("date"), value_set=new.column("date"))))
    if kept.num_rows == 0:
        return normalize(new)
    return normalize(pa.concat_tables([kept, new]))


def encode(table: pa.Table, adjusted_as_of: datetime, fetched_since: datetime | None = None) -> bytes:
    metadata = {ADJUSTED_AS_OF: adjusted_as_of.isoformat().encode()}
    if fetched_since is not None:
        metadata[TICKER_FETCHED_SINCE] = fetched_since.isoformat().encode()
    sink = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(metadata), sink, compression="zstd")
    return sink.getvalue()


def decode(body: bytes, year: int, version: str | None = None) -> YearObject:
    """A stored year object; UnreadableObject saying what is wrong with it (the caller names the key)."""
    try:
        # ParquetFile.read: a plain file read, without read_table's dataset machinery (~2.5x faster here).
        table = pq.ParquetFile(io.BytesIO(body)).read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise UnreadableObject(f"not a readable Parquet file ({type(exc).__name__})") from None
    metadata = table.schema.metadata or {}
    as_of = _timestamp(metadata, ADJUSTED_AS_OF)
    try:
        since = _timestamp(metadata, TICKER_FETCHED_SINCE)
    except UnreadableObject:
        since = None  # a hint only: without it the check reads the fetch-times object instead
    table = _as_price_schema(table.replace_schema_metadata(None))
    bounds = date_bounds(table)
    if bounds and not bounds[0].year == bounds[1].year == year:
        raise UnreadableObject(f"rows dated {bounds[0]}..{bounds[1]} in the object of year {year}")
    first, last = bounds or (None, None)
    return YearObject(table, as_of, version, first, last, since)


def adjusted_as_of_after(current: YearObject, rows: pa.Table, fetched_at: datetime) -> datetime:
    """The object is only as fresh as its oldest row that this write does not replace."""
    if current.table.num_rows == 0:
        return fetched_at
    bounds = date_bounds(rows)
    if current.first_date is not None and bounds is not None and current.first_date < bounds[0]:
        keeps_older_rows = True  # the stored first day is before every new row
    else:
        replaced = pc.all(pc.is_in(current.table.column("date"), value_set=rows.column("date"))).as_py()
        keeps_older_rows = not replaced
    if keeps_older_rows and current.adjusted_as_of:
        return min(current.adjusted_as_of, fetched_at)
    return fetched_at


def fetched_since(objects: Iterable[YearObject]) -> datetime | None:
    """The best lower bound of a ticker's oldest fetch that these objects of it carry (None: none)."""
    return max((obj.fetched_since for obj in objects if obj.fetched_since is not None), default=None)


def _timestamp(metadata: Mapping[bytes, bytes], name: bytes) -> datetime | None:
    raw = metadata.get(name)
    if raw is None:
        return None  # e.g. written by another tool: no fetch time known
    try:
        as_of = datetime.fromisoformat(raw.decode())
    except (UnicodeDecodeError, ValueError):
        as_of = None
    if as_of is None or as_of.tzinfo is None:
        raise UnreadableObject(f"{name.decode()} metadata is not an ISO timestamp with a time zone")
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
