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
from stockpipe.backfill.progress_store import ProgressStore
from stockpipe.calendar import trading_days
from stockpipe.objectstore import LocalObjectStore, ObjectStore
from stockpipe.pricestore import PRICES_PREFIX, PriceStore
from stockpipe_local.console import render_table


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
    return render_table(header, lines[1:], right=frozenset({4}))


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


def status_text(data_dir: Path, chunk_months: int) -> str:
    """`stockpipe status`: the orchestrator's status answer as a table."""
    store = LocalObjectStore(data_dir)
    progress = ProgressStore(store).load()
    try:
        from stockpipe.universe import load_universe

        universe = load_universe(store)
    except ValueError:
        universe = []
    summary = prog.summarize(progress, universe, chunk_months=chunk_months)
    if not summary["tickers"]:
        return f"No backfill progress in {data_dir} yet: run `make run` (or `stockpipe run`)."
    rows = [("ticker", "state", "next start", "end", "chunks left", "attempts", "last error")]
    for ticker, entry in summary["tickers"].items():
        left = entry["chunks_left"]
        rows.append(
            (
                ticker,
                entry["state"],
                entry.get("next_start") or "-",
                entry.get("end") or "-",
                "?" if left is None else str(left),
                str(entry.get("attempts", 0)),
                (entry.get("last_error") or "")[:80],
            )
        )
    lines = [render_table(rows[0], rows[1:])]
    counts = summary["counts"]
    lines.append("")
    lines.append(
        f"{counts['done']} done, {counts['in_progress']} in progress, {counts['parked']} parked, "
        f"{counts['pending']} pending; {summary['chunks_left']} chunk(s) left"
    )
    return "\n".join(lines)
