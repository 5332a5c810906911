"""The end-of-run report: per ticker first/last date, rows and missing trading days, and a DuckDB query.

Read with the project's own PriceStore (pyarrow), so the report needs nothing beyond the runtime
dependencies; DuckDB is only what the user pastes afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from stockpipe.backfill import progress as prog
from stockpipe.calendar import trading_days
from stockpipe.objectstore import ObjectStore
from stockpipe.pricestore import PRICES_PREFIX, PriceStore


@dataclass(frozen=True)
class TickerReport:
    ticker: str
    state: str
    first: date | None
    last: date | None
    rows: int
    missing: tuple[date, ...]
    note: str = ""


def missing_trading_days(days: Iterable[date], first: date | None, last: date | None) -> list[date]:
    """NYSE trading days (stockpipe.calendar) in [first, last] that have no stored row."""
    if first is None or last is None:
        return []
    stored = set(days)
    return [day for day in trading_days(first, last) if day not in stored]


def build_report(store: ObjectStore, tickers: Sequence[str], progress: prog.Progress) -> list[TickerReport]:
    prices = PriceStore(store)
    reports = []
    for ticker in tickers:
        days = prices.read_ticker(ticker).column("date").to_pylist()
        record = progress.get(ticker)
        first, last = (days[0], days[-1]) if days else (None, None)
        note = ""
        if record is not None and record.parked and record.last_error:
            note = record.last_error
        elif record is not None and record.planned and record.first_date is None:
            note = "Tiingo has no prices for this ticker"
        reports.append(
            TickerReport(
                ticker,
                prog.ticker_state(record),
                first,
                last,
                len(days),
                tuple(missing_trading_days(days, first, last)),
                note,
            )
        )
    return reports


def format_table(reports: Sequence[TickerReport]) -> str:
    """A plain-text table; missing days list the first few dates so gaps can be checked by hand."""
    header = ("ticker", "state", "first date", "last date", "rows", "missing trading days")
    lines = [header]
    for r in reports:
        missing = str(len(r.missing))
        if r.missing:
            shown = ", ".join(d.isoformat() for d in r.missing[:3])
            missing += f" ({shown}{', ...' if len(r.missing) > 3 else ''})"
        if r.note:
            missing += f"  [{r.note[:80]}]"
        lines.append(
            (
                r.ticker,
                r.state,
                r.first.isoformat() if r.first else "-",
                r.last.isoformat() if r.last else "-",
                f"{r.rows:,}",
                missing,
            )
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(header) - 1)]
    out = []
    for index, row in enumerate(lines):
        cells = [
            cell.rjust(w) if i == 4 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=False))
        ]
        out.append("  ".join([*cells, row[-1]]).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in [*widths, len(header[-1])]))
    return "\n".join(out)


def parquet_glob(data_dir: str | os.PathLike[str]) -> str:
    """The dataset glob as the user should type it (relative when the data is under the cwd)."""
    path = Path(data_dir)
    try:
        shown = os.path.relpath(path.resolve(), Path.cwd())
        if shown.startswith(".."):
            shown = str(path.resolve())
    except ValueError:  # another drive on Windows
        shown = str(path.resolve())
    return f"{Path(shown).as_posix()}/{PRICES_PREFIX}/*/*/*.parquet"


def duckdb_query(data_dir: str | os.PathLike[str]) -> str:
    """A query the user can paste into ``duckdb`` (hive partitions give the ticker and year columns)."""
    return (
        "SELECT ticker, count(*) AS rows, min(date) AS first, max(date) AS last, "
        "round(avg(adj_close), 2) AS avg_adj_close\n"
        f"FROM read_parquet('{parquet_glob(data_dir)}', hive_partitioning=true)\n"
        "GROUP BY ticker ORDER BY ticker;"
    )
