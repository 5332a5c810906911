"""The orchestrator's answers (public contracts, README "tiingo-backfill-orchestrator"), typed once.

Every answer stays far below Lambda's 6 MB response limit at any universe size the orchestrator accepts
(``settings.MAX_TICKERS``): lists of tickers are capped (``MAX_LISTED`` per list in a run summary,
``STATUS_MAX_LIMIT`` details per status page) while the counts beside them stay exact.
"""

from __future__ import annotations

from typing import Literal, TypedDict

MAX_LISTED = 1_000  # tickers per list in a run summary (done, parked, leased_elsewhere, errors)
STATUS_LIMIT = 100  # tickers per status page unless the event asks for another ``limit``
STATUS_MAX_LIMIT = 1_000  # at most ~0.5 MB of details per page


class Remaining(TypedDict):
    tickers: int  # not done nor parked
    chunks: int  # chunks left of those (not parked)
    unplanned: int  # tickers without an answer yet (their range is not known)


class ListedTotals(TypedDict):
    """Exact counts of the run summary's lists (which hold at most MAX_LISTED names each)."""

    done: int
    parked: int
    leased_elsewhere: int
    errors: int


class RunSummary(TypedDict):
    action: Literal["run"]
    stopped: str  # run_loop.Stopped or a FailureKind that stops runs
    chunks_done: int  # six-month chunks fetched (one request may cover many)
    chunks_failed: int  # failed requests
    metadata_lookups: int
    rows_written: int
    requests: int  # Tiingo requests spent, retries included
    budget: int
    remaining: Remaining
    done: list[str]  # the run's tickers that are done (sorted; capped)
    parked: list[str]
    leased_elsewhere: list[str]
    errors: dict[str, str]  # ticker -> "<kind>: <message>", this run
    totals: ListedTotals
    duration_ms: int


class StatusCounts(TypedDict):
    done: int
    in_progress: int
    parked: int
    pending: int


class StatusTicker(TypedDict, total=False):
    state: str  # done / in_progress / parked / pending
    chunks_left: int | None  # None: no answer yet
    start: str | None
    end: str | None
    next_start: str | None
    first_date: str | None
    attempts: int
    last_error: str | None
    chunks_done: int
    rows: int
    leased_until: str | None
    fetched_from: str  # only while an extended history's earlier days are fetched
    metadata: str  # only once Tiingo's metadata is due or read
    max_chunks: int  # only after a failed request of several chunks
    error: str  # only when the ticker's progress object cannot be read (StoreError text)


class StatusPage(TypedDict):
    limit: int
    next: str | None  # send as "page" to get the next page; None: this was the last
    total: int  # tickers matching the request (exact)


class StatusAnswer(TypedDict, total=False):
    action: Literal["status"]
    counts: StatusCounts  # every ticker of the universe or with progress (exact)
    chunks_left: int  # of all those, parked ones excepted (exact)
    tickers: dict[str, StatusTicker]  # one page
    page: StatusPage
    unknown: list[str]  # only for "tickers": asked for, neither in the universe nor with progress


class ActionAnswer(TypedDict):
    action: Literal["retry", "reset"]
    tickers: list[str]
    unknown: list[str]
