"""What is stored, per ticker: state, first/last date, rows, missing trading days, freshness.

Read with the project's own PriceStore (pyarrow), so `run` and `status` need nothing beyond the runtime
dependencies; DuckDB is only what the user pastes afterwards. One ticker's unreadable object is that
ticker's note (kind ``store``), never the end of the report.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from stockpipe.backfill import progress as prog
from stockpipe.calendar import (
    is_trading_day,
    last_completed_trading_day,
    previous_trading_day,
    trading_days,
    trading_days_after,
)
from stockpipe.errors import StoreError, clean_message
from stockpipe.layout import PRICES_PREFIX
from stockpipe.objectstore import ObjectStore
from stockpipe.pricestore import PriceStore

SHOWN_MISSING = 3


@dataclass(frozen=True)
class TickerReport:
    ticker: str
    state: str
    first: date | None
    last: date | None
    rows: int
    missing: tuple[date, ...]
    note: str = ""
    behind: int | None = None  # NYSE trading days between the last stored date and the last trading day
    chunks_left: int | None = None
    attempts: int = 0

    @property
    def freshness(self) -> str:
        if self.behind is None:
            return "-"
        return (
            "fresh"
            if self.behind == 0
            else f"{self.behind} trading day{'s' if self.behind > 1 else ''} behind"
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            first=_iso(self.first),
            last=_iso(self.last),
            missing=[d.isoformat() for d in self.missing],
            missing_count=len(self.missing),
            freshness=self.freshness,
        )
        return data


def expected_last_day(today: date | None = None) -> date:
    """The newest trading day whose bar is due: now (New York close), or on/before a given ``today``."""
    if today is None:
        return last_completed_trading_day(datetime.now(UTC))
    return today if is_trading_day(today) else previous_trading_day(today)


def missing_trading_days(days: Iterable[date], first: date | None, last: date | None) -> list[date]:
    """NYSE trading days (stockpipe.calendar) in [first, last] that have no stored row."""
    if first is None or last is None:
        return []
    stored = set(days)
    return [day for day in trading_days(first, last) if day not in stored]


def build_report(
    store: ObjectStore,
    tickers: Sequence[str],
    progress: prog.Progress,
    *,
    chunk_months: int = 0,
    today: date | None = None,
) -> list[TickerReport]:
    prices = PriceStore(store)
    due = expected_last_day(today)
    reports = []
    for ticker in tickers:
        record = progress.get(ticker)
        note = ""
        try:
            days = prices.read_ticker(ticker).column("date").to_pylist()
        except (StoreError, OSError, ValueError) as exc:  # one unreadable object: this ticker's note only
            days, note = [], f"store: {clean_message(exc)}"
        first, last = (days[0], days[-1]) if days else (None, None)
        if note:
            pass  # the store problem is what the user needs to see first
        elif record is not None and record.parked and record.last_error:
            note = record.last_error
        elif record is not None and record.planned and record.first_date is None:
            note = "Tiingo has no prices for this ticker"
        elif record is not None and record.last_error:
            note = f"last error: {record.last_error}"
        reports.append(
            TickerReport(
                ticker,
                prog.ticker_state(record),
                first,
                last,
                len(days),
                tuple(missing_trading_days(days, first, last)),
                clean_message(note) if note else "",
                None if last is None else trading_days_after(last, due),
                prog.chunks_left(record, chunk_months),
                record.attempts if record is not None else 0,
            )
        )
    return reports


def table_rows(
    reports: Sequence[TickerReport], *, with_plan: bool = False
) -> tuple[list[str], list[list[str]]]:
    """Header and cells for ``console.table``; the last column (notes) is the free one."""
    header = ["ticker", "state", "first date", "last date", "rows", "missing days", "freshness"]
    if with_plan:
        header += ["chunks left", "attempts"]
    rows = []
    for r in reports:
        missing = str(len(r.missing))
        if r.missing:
            shown = ", ".join(d.isoformat() for d in r.missing[:SHOWN_MISSING])
            missing += f" ({shown}{', ...' if len(r.missing) > SHOWN_MISSING else ''})"
        cells = [
            r.ticker,
            r.state,
            _iso(r.first) or "-",
            _iso(r.last) or "-",
            f"{r.rows:,}",
            missing,
            r.freshness,
        ]
        if with_plan:
            cells += ["?" if r.chunks_left is None else str(r.chunks_left), str(r.attempts)]
        rows.append([*cells, r.note])
    return [*header, "note"], rows


NUMERIC_COLUMNS = frozenset({4})


def counts_line(reports: Sequence[TickerReport]) -> str:
    states = [r.state for r in reports]
    parts = [f"{states.count(s)} {s.replace('_', ' ')}" for s in ("done", "in_progress", "parked", "pending")]
    return ", ".join(parts)


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
        "SELECT ticker, count(*) AS rows, min(date) AS first, max(date) AS last,\n"
        "       round(avg(adj_close), 2) AS avg_adj_close\n"
        f"FROM read_parquet('{parquet_glob(data_dir)}', hive_partitioning=true)\n"
        "GROUP BY ticker ORDER BY ticker;"
    )


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None
