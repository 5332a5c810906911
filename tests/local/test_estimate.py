"""The cost a real-API run announces before its first request: what the orchestrator will ask for.

The orchestrator asks for each ticker's pending range in one request (a split ticker in requests of at
most ``max_chunks`` chunks), and a ticker never answered yet may need one metadata lookup more.
"""

from __future__ import annotations

from datetime import date

from stockpipe.backfill import progress as prog
from stockpipe_local.sources import estimate_requests

PLANNED = {"start": date(2000, 1, 3), "end": date(2024, 6, 14), "planned": True}


def progress(**records: prog.TickerProgress) -> prog.Progress:
    state = prog.Progress()
    for ticker, record in records.items():
        state = state.with_ticker(ticker, record)
    return state


def test_a_new_universe_costs_one_request_per_ticker_and_at_most_two() -> None:
    estimate = estimate_requests(prog.Progress(), ["AAPL", "MSFT", "SPY"], chunk_months=6)
    assert (estimate.tickers, estimate.unplanned, estimate.requests) == (3, 3, 6)


def test_finished_and_parked_tickers_cost_nothing_and_pending_ranges_one_request() -> None:
    state = progress(
        DONE=prog.TickerProgress(**PLANNED, done=True),
        PARKED=prog.TickerProgress(**PLANNED, next_start=date(2010, 1, 1), parked=True),
        HALF=prog.TickerProgress(**PLANNED, next_start=date(2010, 1, 1)),  # 29 six-month chunks left
    )
    estimate = estimate_requests(state, ["DONE", "PARKED", "HALF"], chunk_months=6)
    assert (estimate.unplanned, estimate.requests) == (0, 1)


def test_a_split_ticker_costs_one_request_per_allowed_span() -> None:
    split = prog.TickerProgress(**PLANNED, next_start=date(2023, 1, 2), max_chunks=2)  # 3 chunks left
    estimate = estimate_requests(progress(SPLIT=split), ["SPLIT"], chunk_months=6)
    assert estimate.requests == 2
