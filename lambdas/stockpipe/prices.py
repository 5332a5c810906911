"""The stored price schema (a public contract) and the Tiingo JSON -> Arrow conversion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from stockpipe.errors import BadPayloadError

# Column name in the Parquet files -> key in Tiingo's JSON rows. Order is the file's column order.
TIINGO_KEYS: dict[str, str] = {
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "volume",
    "adj_open": "adjOpen",
    "adj_high": "adjHigh",
    "adj_low": "adjLow",
    "adj_close": "adjClose",
    "adj_volume": "adjVolume",
    "div_cash": "divCash",
    "split_factor": "splitFactor",
}

PRICE_SCHEMA = pa.schema(
    [pa.field("date", pa.date32(), nullable=False)]
    + [pa.field(name, pa.int64() if name == "volume" else pa.float64()) for name in TIINGO_KEYS]
)


def empty_table() -> pa.Table:
    return PRICE_SCHEMA.empty_table()


def rows_to_table(rows: Any) -> pa.Table:
    """Convert Tiingo's JSON list of bars into a table of PRICE_SCHEMA, sorted and unique by date.

    Dates keep their calendar day whatever the suffix (``...T00:00:00.000Z`` or ``...+00:00``): the
    first ten characters are the trading day, never shifted by time zone. Volumes are read leniently
    (``288688.0`` is an integer); a fractional volume or any other shape problem is a BadPayloadError.
    """
    if not isinstance(rows, list):
        raise BadPayloadError(f"expected a JSON list of price rows, got {type(rows).__name__}")
    if not rows:
        return empty_table()
    if not all(isinstance(row, dict) for row in rows):
        raise BadPayloadError("expected every price row to be a JSON object")
    try:
        columns = {"date": _dates([row["date"] for row in rows])}
        for name, key in TIINGO_KEYS.items():
            values = [row.get(key) for row in rows]
            if name == "volume":
                columns[name] = _volumes(values)
            else:
                columns[name] = pa.array(values, type=pa.float64(), from_pandas=False)
    except KeyError as exc:
        raise BadPayloadError(f"price row without {exc.args[0]!r}") from None
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise BadPayloadError(f"malformed price row: {str(exc)[:200]}") from None
    return normalize(pa.table(columns, schema=PRICE_SCHEMA))


def normalize(table: pa.Table) -> pa.Table:
    """Sort by date and keep the last row of each date (later rows are newer data)."""
    if table.num_rows == 0:
        return table
    dates = table.column("date")
    indices = pc.sort_indices(dates)
    table = table.take(indices)
    if pc.count_distinct(dates).as_py() == table.num_rows:
        return table
    # Keep the last occurrence of each date after a stable sort.
    sorted_dates = table.column("date").combine_chunks()
    keep = pc.not_equal(sorted_dates.slice(0, len(sorted_dates) - 1), sorted_dates.slice(1))
    keep = pa.concat_arrays([keep, pa.array([True])])
    return table.filter(keep)


def _dates(values: Sequence[Any]) -> pa.Array:
    if not all(isinstance(v, str) and len(v) >= 10 for v in values):
        raise BadPayloadError("price row with a missing or malformed date")
    days = pc.utf8_slice_codeunits(pa.array(values, type=pa.string()), 0, 10)
    try:
        return days.cast(pa.date32())
    except pa.ArrowInvalid:
        raise BadPayloadError("price row with a malformed date") from None


def _volumes(values: list[Any]) -> pa.Array:
    if any(isinstance(v, bool) for v in values):
        raise BadPayloadError("volume must be a number")
    floats = pa.array(values, type=pa.float64(), from_pandas=False)
    try:
        return floats.cast(pa.int64())  # safe cast: 288688.0 -> 288688, 1.5 -> error
    except pa.ArrowInvalid:
        raise BadPayloadError("volume is not a whole number") from None


def date_bounds(table: pa.Table) -> tuple[Any, Any] | None:
    if table.num_rows == 0:
        return None
    bounds = pc.min_max(table.column("date"))
    return bounds["min"].as_py(), bounds["max"].as_py()
