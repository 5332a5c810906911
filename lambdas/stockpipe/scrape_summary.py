"""The scraper's result: one outcome per ticker, the summary the handler returns, and its log lines.

The summary is a public contract (the orchestrator and the CLI read it; README "tiingo-price-scraper"):
``succeeded[T]`` holds rows, range, requests, retries, ``rewritten`` and the reply's quarantine
(``rejected``: at most ``validation.REJECTED_SHOWN`` ``{"date", "reason"}`` entries, ``rejected_rows``,
``out_of_range_rows``); ``failed[T]`` holds a ``FailureKind`` and a message that went through
``errors.clean_message``. The closing log line is also the EMF record of the run's metrics.

Lambda answers at most 6 MB, so the per-ticker detail is capped: ``succeeded`` and ``failed`` together
hold at most ``DETAIL_MAX`` tickers (failures first, non-skipped before skipped, then successes, each in
run order); ``detail_omitted`` says how many were left out. The counts are always exact:
``tickers_succeeded``, ``tickers_failed``, ``failed_by_kind`` and the totals. Every ticker's detail is in
its own log line whatever the cap. With the longest entries (a success listing 20 rejected rows, ~2.5 KB;
a failure with a 300-character message, ~0.4 KB) the summary stays below 3 MB.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final, Literal, TypedDict

from stockpipe.errors import FailureKind, clean_message
from stockpipe.layout import FUNCTION_DIMENSION, ScraperMetric
from stockpipe.logs import emf_fields, get_logger
from stockpipe.tiingo import PriceReply, RequestStats

log = get_logger("scraper")

# Tickers listed with their detail in one summary (succeeded + failed); see the module docstring.
DETAIL_MAX: Final = 1000


class Rejection(TypedDict):
    date: str | None
    reason: str


class TickerSuccess(TypedDict):
    rows: int
    start: str | None
    end: str | None
    requests: int
    retries: int
    rewritten: bool
    rejected: list[Rejection]
    rejected_rows: int
    out_of_range_rows: int


class TickerFailure(TypedDict):
    error: str  # a FailureKind
    message: str
    requests: int


class ScrapeSummary(TypedDict):
    mode: Literal["catch_up", "range"]
    tickers: int
    succeeded: dict[str, TickerSuccess]
    failed: dict[str, TickerFailure]
    tickers_succeeded: int
    tickers_failed: int
    failed_by_kind: dict[str, int]
    detail_omitted: int
    rows_written: int
    requests: int
    retries: int
    duration_ms: int


@dataclass
class Outcome:
    """What happened to one ticker in one scrape."""

    ticker: str
    stats: RequestStats = field(default_factory=RequestStats)
    rows: int = 0
    start: date | None = None
    end: date | None = None
    rewritten: bool = False
    kind: FailureKind | None = None  # None: succeeded
    message: str = ""
    # The reply's quarantine, kept instead of the reply itself: a run holds every outcome until its
    # summary, so an outcome must stay small whatever the reply held (10,000-ticker catch-ups).
    rejected: list[Rejection] = field(default_factory=list)
    rejected_rows: int = 0
    out_of_range_rows: int = 0
    last_date: date | None = None  # the ticker's newest stored day after this scrape (None: unknown)
    duration_ms: int = 0

    def fail(self, kind: FailureKind, message: object) -> None:
        self.kind = kind
        self.message = clean_message(message)

    def note_reply(self, reply: PriceReply) -> None:
        """Keep what the summary reports of ``reply``: its quarantine (never its rows)."""
        self.rejected = [Rejection(date=r["date"], reason=str(r["reason"])) for r in reply.rejected]
        self.rejected_rows = reply.rejected_rows
        self.out_of_range_rows = reply.out_of_range_rows

    def success_entry(self) -> TickerSuccess:
        return TickerSuccess(
            rows=self.rows,
            start=self.start.isoformat() if self.start else None,
            end=self.end.isoformat() if self.end else None,
            requests=self.stats.requests,
            retries=self.stats.retries,
            rewritten=self.rewritten,
            rejected=list(self.rejected),
            rejected_rows=self.rejected_rows,
            out_of_range_rows=self.out_of_range_rows,
        )


def log_ticker(outcome: Outcome) -> None:
    fields: dict[str, Any] = {
        "ticker": outcome.ticker,
        "rows": outcome.rows,
        "start": outcome.start,
        "end": outcome.end,
        "duration_ms": outcome.duration_ms,
        "requests": outcome.stats.requests,
        "retries": outcome.stats.retries,
    }
    if outcome.kind is None:
        fields.update(rejected_rows=outcome.rejected_rows, out_of_range_rows=outcome.out_of_range_rows)
        log.info("ticker scraped", extra={**fields, "rewritten": outcome.rewritten})
    else:
        log.warning("ticker failed", extra={**fields, "error": outcome.kind.value, "detail": outcome.message})


def summarise(
    outcomes: list[Outcome], *, catch_up: bool, seconds: float, days_behind: int | None
) -> ScrapeSummary:
    """The handler's return value; also logs it as the run's EMF record."""
    failures = [o for o in outcomes if o.kind is not None]
    successes = [o for o in outcomes if o.kind is None]
    listed = sorted(failures, key=lambda o: o.kind is FailureKind.SKIPPED)[:DETAIL_MAX]
    listed_successes = successes[: DETAIL_MAX - len(listed)]
    failed = {
        o.ticker: TickerFailure(error=o.kind.value, message=o.message, requests=o.stats.requests)
        for o in listed
        if o.kind is not None
    }
    succeeded = {o.ticker: o.success_entry() for o in listed_successes}
    totals: dict[str, int] = {
        ScraperMetric.ROWS_WRITTEN: sum(o.rows for o in outcomes),
        ScraperMetric.TICKERS_FAILED: len(failures),
        ScraperMetric.RETRIES: sum(o.stats.retries for o in outcomes),
        ScraperMetric.REQUESTS: sum(o.stats.requests for o in outcomes),
    }
    if days_behind is not None:
        totals[ScraperMetric.TRADING_DAYS_BEHIND] = days_behind
    summary = ScrapeSummary(
        mode="catch_up" if catch_up else "range",
        tickers=len(outcomes),
        succeeded=succeeded,
        failed=failed,
        tickers_succeeded=len(successes),
        tickers_failed=len(failures),
        failed_by_kind=dict(Counter(o.kind.value for o in failures if o.kind is not None)),
        detail_omitted=len(outcomes) - len(succeeded) - len(failed),
        rows_written=totals[ScraperMetric.ROWS_WRITTEN],
        requests=totals[ScraperMetric.REQUESTS],
        retries=totals[ScraperMetric.RETRIES],
        duration_ms=round(seconds * 1000),
    )
    function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")
    log.info(
        "scrape finished",
        extra={
            "mode": summary["mode"],
            "tickers": len(outcomes),
            "failed_tickers": sorted(o.ticker for o in failures)[:DETAIL_MAX],
            "duration_ms": summary["duration_ms"],
            **emf_fields(totals, dimensions={FUNCTION_DIMENSION: function}),
        },
    )
    return summary
