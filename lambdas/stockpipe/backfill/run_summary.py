"""A run's summary (``answers.RunSummary``, a public contract) and its log line with EMF metrics.

What is left comes from the event's tickers (read again at the end: another run may have finished
some) or, for a run over the stored universe, from the index root's totals, exact and without reading
a shard; the lists of done and parked tickers are read from as few shards as they need and capped at
``MAX_LISTED`` names (``totals`` holds the exact counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from stockpipe.backfill import progress as prog
from stockpipe.backfill.answers import MAX_LISTED, ListedTotals, Remaining, RunSummary
from stockpipe.backfill.steps import StepOutcome
from stockpipe.errors import StoreError
from stockpipe.layout import FUNCTION_DIMENSION, BackfillMetric
from stockpipe.logs import emf_fields, get_logger

if TYPE_CHECKING:
    from stockpipe.backfill.run_loop import RunLoop

log = get_logger("backfill")


@dataclass
class RunCounts:
    chunks_done: int = 0
    chunks_failed: int = 0
    metadata_lookups: int = 0
    rows_written: int = 0

    def add(self, work: prog.Work, outcome: StepOutcome) -> None:
        if work.kind == "metadata":
            self.metadata_lookups += 1
        elif outcome.ok:
            self.chunks_done += work.chunks
            self.rows_written += outcome.rows
        else:
            self.chunks_failed += 1


def summarize_run(loop: RunLoop, seconds: float) -> RunSummary:
    from stockpipe.backfill.run_loop import Stopped

    if loop.tickers is not None:
        remaining, done, parked, listed = _of_tickers(loop)
    else:
        remaining, done, parked, listed = _of_universe(loop)
    stopped = str(loop.stopped or (Stopped.COMPLETE if not remaining["tickers"] else Stopped.NO_WORK))
    leased = sorted(loop.leased_elsewhere)
    errors = dict(sorted(loop.errors.items())[:MAX_LISTED])
    summary = RunSummary(
        action="run",
        stopped=stopped,
        chunks_done=loop.counts.chunks_done,
        chunks_failed=loop.counts.chunks_failed,
        metadata_lookups=loop.counts.metadata_lookups,
        rows_written=loop.counts.rows_written,
        requests=loop.spent,
        budget=loop.budget,
        remaining=remaining,
        done=done,
        parked=parked,
        leased_elsewhere=leased[:MAX_LISTED],
        errors=errors,
        totals=ListedTotals(
            done=listed["done"],
            parked=listed["parked"],
            leased_elsewhere=len(leased),
            errors=len(loop.errors),
        ),
        duration_ms=round(seconds * 1000),
    )
    metrics = {
        BackfillMetric.CHUNKS: loop.counts.chunks_done,
        BackfillMetric.CHUNKS_FAILED: loop.counts.chunks_failed,
        BackfillMetric.ROWS: loop.counts.rows_written,
        BackfillMetric.REQUESTS: loop.spent,
        BackfillMetric.CHUNKS_LEFT: remaining["chunks"],
    }
    log.info(
        "backfill run finished",
        extra={
            "stopped": stopped,
            "parked": parked,
            "remaining_tickers": remaining["tickers"],
            **emf_fields(metrics, dimensions={FUNCTION_DIMENSION: loop.function_name}),
        },
    )
    return summary


def _of_tickers(loop: RunLoop) -> tuple[Remaining, list[str], list[str], dict[str, int]]:
    """From the event's tickers, each read again now."""
    assert loop.tickers is not None
    states: dict[str, str] = {}
    left: dict[str, int | None] = {}
    for ticker, stored in loop.progress.read_many(loop.tickers).items():
        if isinstance(stored, StoreError):
            states[ticker], left[ticker] = "unreadable", None
            continue
        view = loop.view(ticker, prog.Progress.of(ticker, stored[0])).get(ticker)
        states[ticker] = prog.ticker_state(view)
        left[ticker] = prog.chunks_left(view, loop.settings.chunk_months)
    unfinished = [t for t, s in states.items() if s not in ("done", "parked")]
    remaining = Remaining(
        tickers=len(unfinished),
        chunks=sum(left[t] or 0 for t in unfinished),
        unplanned=sum(1 for t in unfinished if left[t] is None and states[t] != "unreadable"),
    )
    done = sorted(t for t, s in states.items() if s == "done")
    parked = sorted(t for t, s in states.items() if s == "parked")
    return remaining, done[:MAX_LISTED], parked[:MAX_LISTED], {"done": len(done), "parked": len(parked)}


def _of_universe(loop: RunLoop) -> tuple[Remaining, list[str], list[str], dict[str, int]]:
    """From the index root's totals; the lists from the shards that hold such tickers."""
    index = loop.progress.index
    root, _ = index.root()
    totals = root.total()
    remaining = Remaining(
        tickers=totals.open, chunks=totals.open_chunks_left, unplanned=totals.open_unplanned
    )
    done = (
        index.listed(root, state="done", limit=MAX_LISTED, universe=True)[0] if totals.universe_done else []
    )
    parked = (
        index.listed(root, state="parked", limit=MAX_LISTED, universe=True)[0]
        if totals.universe_parked
        else []
    )
    return (
        remaining,
        sorted(done),
        sorted(parked),
        {"done": totals.universe_done, "parked": totals.universe_parked},
    )
