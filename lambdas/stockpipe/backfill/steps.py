"""One backfill step, run: a metadata lookup or a chunk invocation, always ending in a StepOutcome.

A step never raises for an ordinary failure: what went wrong becomes the outcome's ``error_kind`` (a
FailureKind) and a scrubbed ``message``, and ``progress.apply_outcome`` turns it into progress. What a
step costs is counted in real Tiingo requests as reported by the client or the scraper; when the
scraper's answer is lost the step is charged its worst case (``requests_per_step``), so the budget
holds whatever happened inside.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Protocol

from stockpipe.backfill.invoker import InvokeError, Invoker
from stockpipe.backfill.state import Progress, Work
from stockpipe.calendar import trading_days
from stockpipe.errors import FailureKind, StockpipeError, clean_message, stops_run


@dataclass(frozen=True)
class StepOutcome:
    """What one step (metadata lookup or request) did; applied to progress as a pure transition.

    ``first_date`` / ``last_date``: Tiingo's first and last price (metadata), or the first and last day
    of the rows a request stored (the scraper summary's ``start`` / ``end``).
    """

    work: Work
    requests: int
    ok: bool
    rows: int = 0
    first_date: date | None = None
    last_date: date | None = None
    error_kind: FailureKind | None = None
    message: str = ""  # scrubbed and cut (errors.clean_message)
    duration_ms: int = 0

    @property
    def stops_run(self) -> bool:
        return stops_run(self.error_kind)

    @classmethod
    def failed(cls, work: Work, kind: FailureKind, message: object, *, requests: int) -> StepOutcome:
        return cls(work, requests, ok=False, error_kind=kind, message=clean_message(message))


Listener = Callable[[StepOutcome, Progress], None]


def failure_kind(raw: object) -> FailureKind:
    """A kind read from a summary; anything outside the vocabulary is the generic ``error``."""
    try:
        return FailureKind(str(raw))
    except ValueError:
        return FailureKind.ERROR


# ---------------------------------------------------------------- metadata


class MetadataSource(Protocol):
    def lookup(self, work: Work) -> StepOutcome:
        """The ticker's first and last price dates in Tiingo, or the failure; never raises for one."""


class TiingoMetadataSource:
    """Metadata through the Tiingo client, built on first use (status/retry/reset never need the token)."""

    def __init__(self, client_factory: Callable[[], Any]) -> None:
        self._factory = client_factory
        self._client: Any = None
        self._lock = threading.Lock()  # steps run in threads: one client (one token lookup) per source

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._factory()
            return self._client

    def lookup(self, work: Work) -> StepOutcome:
        from stockpipe.tiingo import RequestStats  # httpx + pyarrow: only when metadata is needed

        stats = RequestStats()
        try:
            metadata = self._get_client().get_metadata(work.ticker, stats=stats)
        except StockpipeError as exc:
            return StepOutcome.failed(work, exc.kind, exc, requests=stats.requests)
        return StepOutcome(
            work, stats.requests, ok=True, first_date=metadata.start_date, last_date=metadata.end_date
        )


# ---------------------------------------------------------------- chunks


def chunk_event(work: Work) -> dict[str, Any]:
    """The scraper's range event for one request (its public event shape; it may cover many chunks)."""
    assert work.start is not None
    assert work.end is not None
    return {"tickers": [work.ticker], "start_date": work.start.isoformat(), "end_date": work.end.isoformat()}


def chunk_outcome(work: Work, summary: Mapping[str, Any], *, reserve: int) -> StepOutcome:
    """The outcome of a request from the scraper's summary (pure: the summary is already validated).

    ``reserve`` stands in for a missing or malformed request count: the step's worst case. No rows for a
    range with trading days is ``empty`` (what it means is decided in ``outcomes``).
    """
    assert work.start is not None
    assert work.end is not None
    requests = _count(summary.get("requests"), reserve)
    done = summary["succeeded"].get(work.ticker)
    if isinstance(done, dict):
        rows = _count(done.get("rows"), 0)
        if rows == 0 and next(trading_days(work.start, work.end), None) is not None:
            # Tiingo answered [] for trading days: a glitch until proven otherwise (see progress).
            message = f"{work.ticker}: no rows for the trading days of {work.start}..{work.end}"
            return StepOutcome.failed(work, FailureKind.EMPTY, message, requests=requests)
        first, last = _day(done.get("start")), _day(done.get("end"))
        return StepOutcome(work, requests, ok=True, rows=rows, first_date=first, last_date=last)
    failed = summary.get("failed", {}).get(work.ticker)
    if isinstance(failed, dict):
        kind = failure_kind(failed.get("error") or FailureKind.ERROR)
        return StepOutcome.failed(work, kind, failed.get("message", ""), requests=requests)
    return StepOutcome.failed(work, FailureKind.BAD_SUMMARY, "ticker missing from summary", requests=requests)


class StepRunner:
    """Runs one claimed step (in a worker thread); never raises for an ordinary failure."""

    def __init__(self, invoker: Invoker, metadata: MetadataSource, *, requests_per_step: int) -> None:
        self.invoker = invoker
        self.metadata = metadata
        self.requests_per_step = requests_per_step

    def __call__(self, work: Work) -> StepOutcome:
        started = time.monotonic()
        outcome = self.metadata.lookup(work) if work.kind == "metadata" else self._chunk(work)
        return replace(outcome, duration_ms=round((time.monotonic() - started) * 1000))

    def _chunk(self, work: Work) -> StepOutcome:
        reserve = self.requests_per_step
        try:
            summary = self.invoker.invoke(chunk_event(work))
        except InvokeError as exc:  # if the scraper may have run, the step is charged its worst case
            return StepOutcome.failed(work, exc.kind, exc, requests=reserve if exc.may_have_spent else 0)
        except Exception as exc:  # a bug or an unexpected client error: recorded, never fatal to the run
            return StepOutcome.failed(
                work, FailureKind.INTERNAL, f"{type(exc).__name__}: {exc}", requests=reserve
            )
        return chunk_outcome(work, summary, reserve=reserve)


def _day(value: Any) -> date | None:
    """A summary's ISO date, or None for anything else (the range then stays unknown, never wrong)."""
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _count(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default
