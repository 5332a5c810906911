"""A Tiingo-compatible end-of-day HTTP server for tests, benchmarks and offline `make run`.

It behaves like the facts in ../shared/reference/tiingo-api.md: ranged and latest-bar price requests,
metadata, token auth, 404s, an hourly clock-aligned quota, plus injectable faults (429s, monthly-limit
texts, 5xx, truncated/HTML/wrong-shape bodies, slow answers, connection resets).

    market.py   the synthetic prices: a pure function of (seed, ticker, day), corporate actions
    faults.py   Tiingo's error answers, injectable and background faults, the quota
    server.py   the HTTP facade (TiingoSimulator) over the market and the fault plan
    cli.py      `stockpipe simulator` / `python -m stockpipe_local.simulator`
"""

from stockpipe_local.simulator.cli import main
from stockpipe_local.simulator.faults import (
    BANDWIDTH_TEXT,
    FAULTS,
    HOURLY_LIMIT_DETAIL,
    MONTHLY_SYMBOL_TEXT,
    Faults,
)
from stockpipe_local.simulator.market import DEFAULT_TICKERS, GENERATED_FIRST_DATE, ROW_KEYS, Market
from stockpipe_local.simulator.server import RequestRecord, TiingoSimulator

__all__ = [
    "BANDWIDTH_TEXT",
    "DEFAULT_TICKERS",
    "FAULTS",
    "GENERATED_FIRST_DATE",
    "HOURLY_LIMIT_DETAIL",
    "MONTHLY_SYMBOL_TEXT",
    "ROW_KEYS",
    "Faults",
    "Market",
    "RequestRecord",
    "TiingoSimulator",
    "main",
]
