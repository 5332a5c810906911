"""One bounded backfill run: claim steps, run them in a thread pool, record their outcomes, summarise.

Limits, all per run: a request budget (counted in real Tiingo requests: metadata lookups plus what the
scraper reports, retries included), a bounded number of concurrent steps, and a deadline (stop
launching before the Lambda timeout). Every step is claimed in progress (a lease, via CAS) before it
starts, so overlapping runs never do the same chunk at the same time; a crashed run's lease expires,
and a run that fails or is interrupted gives its leases back before it ends.

The budget: a step may start when the budget left covers its worst case (``requests_per_step``) on
top of the worst case of the steps still in flight. When it does not, the run waits for an in-flight
step (most cost far less than their worst case) and tries again; it stops for ``budget`` only when
nothing is in flight and what is left is below one step's worst case. So the run spends the same at
any concurrency.

Why a run ended (``stopped`` in its summary, a public contract): ``Stopped`` below, or the kind of a
failure that stops runs (``errors.stops_run``: ``auth``, ``rate_limited``, ``network``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from stockpipe.backfill import progress as prog
from stockpipe.backfill.owners import new_owner
from stockpipe.backfill.progress_store import ProgressStore
from stockpipe.backfill.settings import BackfillSettings
from stockpipe.backfill.steps import Listener, StepOutcome
from stockpipe.errors import clean_message
from stockpipe.layout import FUNCTION_DIMENSION, BackfillMetric
from stockpipe.logs import emf_fields, get_logger

log = get_logger("backfill")


class Stopped(StrEnum):
    """The run's own reasons to end (besides a failure kind that stops runs)."""

    COMPLETE = "complete"  # every ticker of the run is done or parked
    NO_WORK = "no_work"  # nothing left this run can do (leased elsewhere, failed this run)
    BUDGET = "budget"  # less than one step's worst case is left of the request budget
    DEADLINE = "deadline"  # the Lambda is about to time out


class RunLoop:
    """State of one run (never shared between runs); collaborators are passed in, nothing reaches back."""

    def __init__(
        self,
        *,
        progress: ProgressStore,
        execute: Callable[[prog.Work], StepOutcome],
        settings: BackfillSettings,
        universe: list[str],
        clock: Callable[[], datetime],
        today: Callable[[], date],
        budget: int | None = None,
        remaining_ms: Callable[[], int] | None = None,
        listener: Listener | None = None,
        owner_gone: Callable[[str], bool] | None = None,
        function_name: str = "local",
    ) -> None:
        self.progress = progress
        self.execute = execute
        self.settings = settings
        self.universe = universe
        self.clock = clock
        self.today = today
        self.remaining_ms = remaining_ms
        self.listener = listener
        self.owner_gone = owner_gone
        self.function_name = function_name
        self.budget = settings.effective_budget if budget is None else budget
        # A budget smaller than one step's worst case still allows one step at a time.
        self.reserve = max(1, min(settings.requests_per_step, self.budget))
        self.owner = new_owner()
        self.spent = 0
        self.skip: set[str] = set()
        self.leased_elsewhere: set[str] = set()
        self.in_flight: dict[Future[StepOutcome], prog.Work] = {}
        self.stopped: str | None = None  # a Stopped or a stopping FailureKind
        self.counts = {"chunks_done": 0, "chunks_failed": 0, "metadata_lookups": 0, "rows_written": 0}
        self.errors: dict[str, str] = {}

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        snapshot = self.progress.load()
        if self._prepare(snapshot) != snapshot:  # written only when something changes
            snapshot = self.progress.update(self._prepare)
        pool = ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="backfill")
        abandoned = False
        try:
            while True:
                snapshot = self._launch(snapshot, pool)
                if not self.in_flight:
                    break
                done, _ = wait(
                    list(self.in_flight), timeout=self._wait_seconds(), return_when=FIRST_COMPLETED
                )
                if not done:  # the Lambda is about to time out: leave; leases expire, data is upserted
                    self.stopped = Stopped.DEADLINE
                    abandoned = True
                    break
                for future in done:
                    outcome = future.result()  # a crash (BaseException) keeps the step in in_flight
                    snapshot = self._finish(self.in_flight.pop(future), outcome)
        except BaseException:  # a crash, Ctrl-C, SystemExit: give the leases back first
            self._release_all()
            raise
        finally:
            pool.shutdown(wait=not abandoned, cancel_futures=True)
        return self._summary(snapshot, time.monotonic() - started)

    def _prepare(self, progress: prog.Progress) -> prog.Progress:
        """Before the first step: plan a start date moved earlier; drop leases of runs known to be gone."""
        now = self.clock()
        progress = prog.extend_history(
            progress, self.universe, backfill_start=self.settings.start_date, now=now
        )
        if self.owner_gone is not None:
            progress = prog.release_abandoned(progress, self.universe, is_gone=self.owner_gone, now=now)
        return progress

    def _launch(self, snapshot: prog.Progress, pool: ThreadPoolExecutor) -> prog.Progress:
        while self.stopped is None and len(self.in_flight) < self.settings.concurrency:
            if self._deadline_near():
                self.stopped = Stopped.DEADLINE
                break
            work = self._pick(snapshot)
            if work is None:
                break
            if self.spent + self.reserve * (len(self.in_flight) + 1) > self.budget:
                if not self.in_flight:  # not even one step's worst case is left
                    self.stopped = Stopped.BUDGET
                break  # else: wait for an in-flight step, then look again
            now = self.clock()
            try:
                snapshot = self.progress.update(
                    lambda p, w=work, n=now: prog.claim(
                        p, w, owner=self.owner, now=n, lease_seconds=self.settings.lease_seconds
                    )
                )
            except prog.ClaimRejected as exc:
                log.info("step skipped", extra={"ticker": work.ticker, "reason": str(exc)})
                self.skip.add(work.ticker)
                snapshot = self.progress.load()
                if prog.lease_is_live(snapshot.get(work.ticker) or prog.TickerProgress(), now, self.owner):
                    self.leased_elsewhere.add(work.ticker)
                continue
            self.in_flight[pool.submit(self.execute, work)] = work
        return snapshot

    def _pick(self, snapshot: prog.Progress) -> prog.Work | None:
        """Metadata lookups first (they size the whole plan for 1 request each), then chunks in order."""
        busy = {work.ticker for work in self.in_flight.values()}
        now = self.clock()
        candidates = []
        for ticker in self.universe:
            if ticker in self.skip or ticker in busy:
                continue
            work = prog.next_work(
                snapshot, ticker, chunk_months=self.settings.chunk_months, now=now, owner=self.owner
            )
            if work is not None and work.kind == "metadata":
                return work
            if work is not None:
                candidates.append(work)
                continue
            record = snapshot.get(ticker)
            if record is not None and prog.lease_is_live(record, now, self.owner):
                self.leased_elsewhere.add(ticker)
        return candidates[0] if candidates else None

    def _finish(self, work: prog.Work, outcome: StepOutcome) -> prog.Progress:
        self.spent += outcome.requests
        now, plan_day, settings = self.clock(), self.today(), self.settings
        snapshot = self.progress.update(
            lambda p: prog.apply_outcome(
                p,
                outcome,
                owner=self.owner,
                now=now,
                max_attempts=settings.max_attempts,
                backfill_start=settings.start_date,
                plan_day=plan_day,
            )
        )
        fields: dict[str, Any] = {
            "ticker": work.ticker,
            "step": work.kind,
            "start": work.start,
            "end": work.end,
            "requests": outcome.requests,
            "duration_ms": outcome.duration_ms,
        }
        if outcome.ok:
            if work.kind == "metadata":
                self.counts["metadata_lookups"] += 1
                fields["first_date"] = outcome.first_date
            else:
                self.counts["chunks_done"] += 1
                self.counts["rows_written"] += outcome.rows
                fields["rows"] = outcome.rows
            log.info("backfill step done", extra=fields)
        else:
            self.counts["chunks_failed" if work.kind == "chunk" else "metadata_lookups"] += 1
            self.errors[work.ticker] = clean_message(f"{outcome.error_kind}: {outcome.message}")
            self.skip.add(work.ticker)  # retried by a later run, up to max_attempts
            if outcome.stops_run and self.stopped is None:
                self.stopped = str(outcome.error_kind)
            record = snapshot.get(work.ticker)
            fields.update(
                error=outcome.error_kind, detail=outcome.message, parked=bool(record and record.parked)
            )
            log.warning("backfill step failed", extra=fields)
        if self.listener is not None:
            self.listener(outcome, snapshot)
        return snapshot

    def _deadline_near(self) -> bool:
        return (
            self.remaining_ms is not None and self.remaining_ms() < self.settings.stop_margin_seconds * 1000
        )

    def _wait_seconds(self) -> float | None:
        """How long to wait for in-flight steps: until a few seconds before the Lambda timeout."""
        if self.remaining_ms is None:
            return None
        return max(0.0, (self.remaining_ms() - 5000) / 1000)

    def _release_all(self) -> None:
        """Best effort on a crash or Ctrl-C: give back our leases so the next run needs no wait.

        Every ticker of the run, not only those in flight: an interrupt can land between a claim's
        write and the step's start. ``release`` drops only this run's own leases.
        """
        tickers = {*self.universe, *(work.ticker for work in self.in_flight.values())}
        now = self.clock()
        with contextlib.suppress(Exception):  # the leases expire anyway
            self.progress.update(lambda p: _release_many(p, tickers, self.owner, now))

    def _summary(self, snapshot: prog.Progress, seconds: float) -> dict[str, Any]:
        status = prog.summarize(snapshot, self.universe, chunk_months=self.settings.chunk_months)
        universe_states = {t: status["tickers"][t]["state"] for t in self.universe}
        unfinished = [t for t, s in universe_states.items() if s not in ("done", "parked")]
        stopped = str(self.stopped or (Stopped.COMPLETE if not unfinished else Stopped.NO_WORK))
        chunks_left = sum(
            status["tickers"][t]["chunks_left"] or 0
            for t in unfinished
            if status["tickers"][t]["chunks_left"]
        )
        summary = {
            "action": "run",
            "stopped": stopped,
            **self.counts,
            "requests": self.spent,
            "budget": self.budget,
            "remaining": {
                "tickers": len(unfinished),
                "chunks": chunks_left,
                "unplanned": sum(1 for t in unfinished if status["tickers"][t]["chunks_left"] is None),
            },
            "done": sorted(t for t, s in universe_states.items() if s == "done"),
            "parked": sorted(t for t, s in universe_states.items() if s == "parked"),
            "leased_elsewhere": sorted(self.leased_elsewhere & set(unfinished)),
            "errors": self.errors,
            "duration_ms": round(seconds * 1000),
        }
        metrics = {
            BackfillMetric.CHUNKS: self.counts["chunks_done"],
            BackfillMetric.CHUNKS_FAILED: self.counts["chunks_failed"],
            BackfillMetric.ROWS: self.counts["rows_written"],
            BackfillMetric.REQUESTS: self.spent,
            BackfillMetric.CHUNKS_LEFT: chunks_left,
        }
        log.info(
            "backfill run finished",
            extra={
                "stopped": stopped,
                "parked": summary["parked"],
                "remaining_tickers": len(unfinished),
                **emf_fields(metrics, dimensions={FUNCTION_DIMENSION: self.function_name}),
            },
        )
        return summary


def _release_many(
    progress: prog.Progress, tickers: Iterable[str], owner: str, now: datetime
) -> prog.Progress:
    for ticker in tickers:
        progress = prog.release(progress, ticker, owner=owner, now=now)
    return progress
