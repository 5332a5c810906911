"""The scraper's summary stays under Lambda's 6 MB answer limit whatever the universe: per-ticker detail
is capped (failures first), every count stays exact, and every ticker still has its own log line."""

from __future__ import annotations

import json
from datetime import date

from stockpipe.errors import FailureKind
from stockpipe.scrape_summary import DETAIL_MAX, Outcome, summarise
from stockpipe.validation import DATE_RULE, REJECTED_SHOWN, Screened

LAMBDA_ANSWER_LIMIT = 6 * 1024 * 1024  # bytes: Lambda's synchronous response payload quota


def failed(ticker: str, kind: FailureKind = FailureKind.NOT_FOUND) -> Outcome:
    outcome = Outcome(ticker)
    outcome.fail(kind, f"Tiingo request for {ticker}: HTTP 404: not found: " + "x" * 1000)  # cut to 300
    return outcome


def succeeded_with_every_rejection(ticker: str) -> Outcome:
    reply = Screened()
    for _ in range(REJECTED_SHOWN + 5):
        reply.reject(date(2024, 6, 3), f"date is {DATE_RULE}")  # the longest reason there is
    outcome = Outcome(ticker, rows=250, start=date(2024, 1, 2), end=date(2024, 12, 31))
    outcome.note_reply(reply)
    return outcome


def size(summary: dict) -> int:
    return len(json.dumps(summary).encode())


def test_a_failed_20000_ticker_run_answers_well_under_6_mb_with_exact_counts(capsys):
    outcomes = [failed(f"T{i:05d}") for i in range(20_000)]
    summary = summarise(outcomes, catch_up=True, seconds=1.0, days_behind=None)
    assert size(summary) < 1024 * 1024
    assert len(summary["failed"]) == DETAIL_MAX
    assert (summary["tickers"], summary["tickers_failed"], summary["tickers_succeeded"]) == (
        20_000,
        20_000,
        0,
    )
    assert summary["failed_by_kind"] == {"not_found": 20_000}
    assert summary["detail_omitted"] == 20_000 - DETAIL_MAX
    assert list(summary["failed"]) == [f"T{i:05d}" for i in range(DETAIL_MAX)]  # run order
    closing = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert closing["TickersFailed"] == 20_000


def test_the_largest_possible_summary_stays_below_3_mb():
    outcomes = [succeeded_with_every_rejection(f"S{i:05d}") for i in range(25_000)]
    summary = summarise(outcomes, catch_up=False, seconds=1.0, days_behind=None)
    assert len(summary["succeeded"]["S00000"]["rejected"]) == REJECTED_SHOWN
    assert summary["succeeded"]["S00000"]["rejected_rows"] == REJECTED_SHOWN + 5
    assert size(summary) < 3 * 1024 * 1024 < LAMBDA_ANSWER_LIMIT
    assert summary["rows_written"] == 250 * 25_000


def test_failures_are_listed_first_and_skipped_ones_last():
    outcomes = [succeeded_with_every_rejection(f"S{i:04d}") for i in range(DETAIL_MAX)]
    outcomes += [failed(f"K{i:04d}", FailureKind.SKIPPED) for i in range(10)]
    outcomes += [failed("AUTH", FailureKind.AUTH)]
    summary = summarise(outcomes, catch_up=True, seconds=1.0, days_behind=0)
    assert next(iter(summary["failed"])) == "AUTH"
    assert len(summary["failed"]) == 11
    assert len(summary["succeeded"]) == DETAIL_MAX - 11
    assert summary["failed_by_kind"] == {"skipped": 10, "auth": 1}
    assert (summary["tickers_succeeded"], summary["tickers_failed"]) == (DETAIL_MAX, 11)


def test_a_small_run_lists_every_ticker():
    outcomes = [succeeded_with_every_rejection("AAPL"), failed("NOPE")]
    summary = summarise(outcomes, catch_up=False, seconds=0.1, days_behind=None)
    assert set(summary["succeeded"]) == {"AAPL"}
    assert set(summary["failed"]) == {"NOPE"}
    assert summary["detail_omitted"] == 0
