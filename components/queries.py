"""The Athena named queries shipped with every stack: the common questions, ready to run.

Pure: SQL text from the database name and example values, nothing else. The tests parse every query
with a real SQL parser (sqlglot, Athena dialect), resolve every column against the Glue table's schema,
and run them on DuckDB over a dataset written by the real store (tests/infra/test_athena.py).

Names in the catalog are lower-case ``[a-z0-9_]`` (components.naming.glue_name), so no identifier needs
quoting in DML or DDL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from components.catalog import TABLE_NAME
from stockpipe.prices import PRICE_SCHEMA

EXAMPLE_DAY = date(2024, 6, 3)  # a Monday, a trading day: the cross-section example


@dataclass(frozen=True)
class NamedQuerySpec:
    slug: str
    """kebab-case key: the logical name suffix and the key of the ``athenaNamedQueries`` output."""
    title: str
    """The name Athena shows in its Saved queries list."""
    description: str
    sql: str


def _alias(ticker: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", ticker.lower()).strip("_")


def named_queries(database: str, tickers: tuple[str, ...], day: date = EXAMPLE_DAY) -> list[NamedQuerySpec]:
    """The shipped queries; ``tickers`` supplies the examples (the stack's first two)."""
    table = f"{database}.{TABLE_NAME}"
    first, second = (tickers[0], tickers[1]) if len(tickers) > 1 else (tickers[0], tickers[0])
    columns = ", ".join(PRICE_SCHEMA.names)
    left, right = _alias(first), _alias(second)
    right = right if right != left else f"{right}_2"
    return [
        NamedQuerySpec(
            "ticker-history",
            "One ticker's history",
            f"Every stored day of {first}, oldest first (edit the symbol).",
            f"SELECT {columns}\nFROM {table}\nWHERE ticker = '{first}'\nORDER BY date",
        ),
        NamedQuerySpec(
            "cross-section",
            "Cross-section on a date",
            f"Every ticker's bar on {day} (edit both the date and its year: the year prunes partitions).",
            f"SELECT ticker, open, high, low, close, volume, adj_close\nFROM {table}\n"
            f"WHERE year = {day.year} AND date = DATE '{day.isoformat()}'\nORDER BY ticker",
        ),
        NamedQuerySpec(
            "latest-close",
            "Latest close per ticker",
            "Each ticker's most recent stored day and its close.",
            "SELECT ticker, max(date) AS last_date, max_by(close, date) AS close,"
            f" max_by(adj_close, date) AS adj_close\nFROM {table}\nGROUP BY ticker\nORDER BY ticker",
        ),
        NamedQuerySpec(
            "coverage",
            "Coverage per ticker",
            "Rows, first and last stored date, and years per ticker.",
            "SELECT ticker, count(*) AS row_count, min(date) AS first_date, max(date) AS last_date,"
            f" count(DISTINCT year) AS years\nFROM {table}\nGROUP BY ticker\nORDER BY ticker",
        ),
        NamedQuerySpec(
            "two-tickers",
            "Two tickers side by side",
            f"Adjusted closes of {first} and {second} on the days both traded (a self-join on date).",
            f"SELECT a.date, a.adj_close AS {left}_adj_close, b.adj_close AS {right}_adj_close"
            f"\nFROM {table} AS a\nJOIN {table} AS b ON b.date = a.date\n"
            f"WHERE a.ticker = '{first}' AND b.ticker = '{second}'\nORDER BY a.date",
        ),
        NamedQuerySpec(
            "register-partitions",
            "Register partitions of existing objects",
            "Once, after upgrading a stack whose data predates partition registration, or to repair.",
            f"MSCK REPAIR TABLE {table}",
        ),
    ]
