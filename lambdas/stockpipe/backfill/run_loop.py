"""One bounded backfill run: pick work, claim it, run steps in a thread pool, record their outcomes.

Limits, all per run: a request budget (counted in real Tiingo requests: metadata lookups plus what the
scraper reports, retries included), a bounded number of concurrent steps, and a deadline (stop
launching before the Lambda timeout). Every step is claimed (a lease in the ticker's object, via CAS)
before it starts, so overlapping runs never do the same range at the same time; a crashed run's lease
expires, and a run that fails or is interrupted gives its leases back before it ends.

Where work comes from: the tickers an event names, or the index's open tickers (``index_store``), read
shard by shard as needed. A ticker whose step succeeded is looked at again first (it may have more to
do), so tickers are finished one after another. Each step reads and writes the ticker's object and,
after it, its index entry: a few KB whatever the universe's size.

The budget: a step may start when the budget left covers its worst case (``requests_per_step``) on
top of the worst case of the steps still in flight. When it does not, the run waits for an in-flight
step (most cost far less than their worst case) and tries again; it stops for ``budget`` only when
nothing is in flight and what is left is below one step's worst case. So the run spends the same at
any concurrency.

Why a run ended (``stopped`` in its summary, a public contract): ``Stopped`` below, or the kind of a
failure that stops runs (``errors.stops_run``: ``auth``, ``rate_limited``, ``network``).

Stopping on request (local runs: Ctrl-C, SIGTERM) is cooperative: ``stop_requested`` is polled between
steps and the run ends like any other, its in-flight steps recorded and their leases given back. An
exception raised into the waiting thread instead can land inside ``concurrent.futures.wait`` while it
holds the futures' locks, and a worker finishing its step then blocks on them for good.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import date, datetime
from enum import StrEnum

from stockpipe.backfill import progress as prog
from stockpipe.backfill.answers import RunSummary
from stockpipe.backfill.owners import new_owner
from stockpipe.backfill.progress_store import ProgressStore
from stockpipe.backfill.run_summary import RunCounts, summarize_run
from stockpipe.backfill.settings import BackfillSettings
from stockpipe.backfill.steps import Listener, StepOutcome
from stockpipe.errors import FailureKind, StoreError, clean_message
from stockpipe.logs import get_logger

log = get_logger("backfill")


class Stopped(StrEnum):
    """The run's own reasons to end (besides a failure kind that stops runs)."""

    COMPLETE = "complete"  # every ticker of the run is done or parked
    NO_WORK = "no_work"  # nothing left this run can do (leased elsewhere, failed this run)
    BUDGET = "budget"  # less than one step's worst case is left of the request budget
    DEADLINE = "deadline"  # the Lambda is about to time out
    INTERRUPTED = "interrupted"  # local runs: stop_requested said so (Ctrl-C, SIGTERM)


# How often a run that can be asked to stop looks at ``stop_requested`` while steps are in flight.
STOP_POLL_SECONDS = 0.1
# In-flight steps are left to finish until this long before the Lambda's timeout.
WAIT_MARGIN_MS = 5000


class RunLoop:
    """State of one run (never shared between runs); collaborators are passed in, nothing reaches back."""

    def __init__(
        self,
        *,
        progress: ProgressStore,
        execute: Callable[[prog.Work], StepOutcome],
        settings: BackfillSettings,
        tickers: list[str] | None,
        candidates: Iterator[str],
        clock: Callable[[], datetime],
        today: Callable[[], date],
        budget: int | None = None,
        remaining_ms: Callable[[], int] | None = None,
        listener: Listener | None = None,
        owner_gone: Callable[[str], bool] | None = None,
        stop_requested: Callable[[], bool] | None = None,
        function_name: str = "local",
    ) -> None:
        """``tickers``: the event's tickers (None: the stored universe); ``candidates``: where to look;
        ``stop_requested``: True once the run should end after its in-flight steps."""
        self.progress = progress
        self.execute = execute
        self.settings = settings
        self.tickers = tickers
        self.candidates = candidates
        self.clock = clock
        self.today = today
        self.remaining_ms = remaining_ms
        self.listener = listener
        self.owner_gone = owner_gone
        self.stop_requested = stop_requested
        self.function_name = function_name
        self.budget = settings.effective_budget if budget is None else budget
        # A budget smaller than one step's worst case still allows one step at a time.
        self.reserve = max(1, min(settings.requests_per_step, self.budget))
        self.owner = new_owner()
        self.spent = 0
        self.skip: set[str] = set()
        self.again: deque[str] = deque()  # tickers whose step succeeded: looked at first
        self.records: dict[str, prog.TickerProgress | None] = {}  # what this run read or wrote
        self.claimed: set[str] = set()
        self.leased_elsewhere: set[str] = set()
        self.in_flight: dict[Future[StepOutcome], prog.Work] = {}
        self.stopped: str | None = None  # a Stopped or a stopping FailureKind
        self.counts = RunCounts()
        self.errors: dict[str, str] = {}

    def run(self) -> RunSummary:
        started = time.monotonic()
        pool = ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="backfill")
        abandoned = False
        try:
            while True:
                self._launch(pool)
                if not self.in_flight:
                    break
                done, _ = wait(
                    list(self.in_flight), timeout=self._wait_seconds(), return_when=FIRST_COMPLETED
                )
                if not done and self._out_of_time():  # leave: leases expire, data is upserted
                    self.stopped = Stopped.DEADLINE
                    abandoned = True
                    break
                for future in done:
                    outcome = future.result()  # a crash (BaseException) keeps the step in in_flight
                    self._finish(self.in_flight.pop(future), outcome)
        except BaseException:  # a crash, Ctrl-C, SystemExit: give the leases back first
            self._release_all()
            raise
        finally:
            pool.shutdown(wait=not abandoned, cancel_futures=True)
        return summarize_run(self, time.monotonic() - started)

    def planning(self) -> prog.Planning:
        settings = self.settings
        return prog.Planning(
            chunk_months=settings.chunk_months,
            backfill_start=settings.start_date,
            plan_day=self.today(),
            max_chunks=settings.max_chunks_per_request,
        )

    def view(self, ticker: str, progress: prog.Progress) -> prog.Progress:
        """The ticker as the run acts on it: an earlier start date planned, a dead run's lease dropped."""
        now = self.clock()
        progress = prog.extend_history(progress, [ticker], backfill_start=self.settings.start_date, now=now)
        if self.owner_gone is not None:
            progress = prog.release_abandoned(progress, [ticker], is_gone=self.owner_gone, now=now)
        return progress

    def _launch(self, pool: ThreadPoolExecutor) -> None:
        while self.stopped is None and len(self.in_flight) < self.settings.concurrency:
            if self.stop_requested is not None and self.stop_requested():
                self.stopped = Stopped.INTERRUPTED
                break
            if self._deadline_near():
                self.stopped = Stopped.DEADLINE
                break
            work = self._pick()
            if work is None:
                break
            if self.spent + self.reserve * (len(self.in_flight) + 1) > self.budget:
                self.again.appendleft(work.ticker)  # for after an in-flight step (or the next run)
                if not self.in_flight:  # not even one step's worst case is left
                    self.stopped = Stopped.BUDGET
                break  # else: wait for an in-flight step, then look again
            now = self.clock()
            try:
                record, _ = self.progress.update(
                    work.ticker,
                    lambda p, w=work, n=now: prog.claim(
                        self.view(w.ticker, p),
                        w,
                        owner=self.owner,
                        now=n,
                        lease_seconds=self.settings.lease_seconds,
                    ),
                    chunk_months=self.settings.chunk_months,
                    only_new=True,  # a first claim creates the ticker's record: the index says so
                )
            except StoreError as exc:  # unreadable since it was read: this ticker only
                self._unreadable(work.ticker, exc)
                continue
            except prog.ClaimRejected as exc:
                log.info("step skipped", extra={"ticker": work.ticker, "reason": str(exc)})
                self.skip.add(work.ticker)
                latest = self.progress.get(work.ticker)
                self.records[work.ticker] = latest
                if latest is not None and prog.lease_is_live(latest, now, self.owner):
                    self.leased_elsewhere.add(work.ticker)
                continue
            self.records[work.ticker] = record
            self.claimed.add(work.ticker)
            self.in_flight[pool.submit(self.execute, work)] = work

    def _pick(self) -> prog.Work | None:
        """The next ticker with work, or None."""
        busy = {work.ticker for work in self.in_flight.values()}
        while True:
            ticker = self.again.popleft() if self.again else next(self.candidates, None)
            if ticker is None:
                return None
            if ticker in self.skip or ticker in busy:
                continue
            work = self._work_for(ticker)
            if work is not None:
                return work

    def _work_for(self, ticker: str) -> prog.Work | None:
        """Read the ticker's object and decide its next step (a stale index entry is corrected)."""
        now = self.clock()
        try:
            record, rev = self.progress.read(ticker)
        except StoreError as exc:  # blocks this ticker only; the object is left as it is
            self._unreadable(ticker, exc)
            return None
        view = self.view(ticker, prog.Progress.of(ticker, record))
        self.records[ticker] = view.get(ticker)
        work = prog.next_work(view, ticker, planning=self.planning(), now=now, owner=self.owner)
        if work is None:
            self.skip.add(ticker)
            current = view.get(ticker)
            if current is not None and prog.lease_is_live(current, now, self.owner):
                self.leased_elsewhere.add(ticker)
            elif self.tickers is None:  # it came from an open index entry: make sure the entry agrees
                self.progress.index.record(ticker, current, rev, self.settings.chunk_months)
        return work

    def _finish(self, work: prog.Work, outcome: StepOutcome) -> None:
        self.spent += outcome.requests
        now, planning, settings = self.clock(), self.planning(), self.settings
        try:
            record, _ = self.progress.update(
                work.ticker,
                lambda p: prog.apply_outcome(
                    p,
                    outcome,
                    owner=self.owner,
                    now=now,
                    max_attempts=settings.max_attempts,
                    planning=planning,
                ),
                chunk_months=settings.chunk_months,
            )
        except StoreError as exc:  # made unreadable during the step: its data is stored, redone later
            self._unreadable(work.ticker, exc)
            return
        self.records[work.ticker] = record
        self.counts.add(work, outcome)
        fields: dict[str, object] = {"ticker": work.ticker, "step": work.kind, "start": work.start}
        fields.update(
            end=work.end, chunks=work.chunks, requests=outcome.requests, duration_ms=outcome.duration_ms
        )
        if outcome.ok:
            self.again.appendleft(work.ticker)  # it may have more to do: finish it first
            if work.kind == "metadata":
                fields.update(first_date=outcome.first_date, last_date=outcome.last_date)
            else:
                fields.update(rows=outcome.rows, first_date=outcome.first_date)
            log.info("backfill step done", extra=fields)
        else:
            self.errors[work.ticker] = clean_message(f"{outcome.error_kind}: {outcome.message}")
            if outcome.error_kind == FailureKind.EMPTY and record is not None and record.metadata == "due":
                self.again.appendleft(work.ticker)  # the metadata lookup that decides comes next
            else:
                self.skip.add(work.ticker)  # retried by a later run, up to max_attempts
            if outcome.stops_run and self.stopped is None:
                self.stopped = str(outcome.error_kind)
            fields.update(
                error=outcome.error_kind, detail=outcome.message, parked=bool(record and record.parked)
            )
            log.warning("backfill step failed", extra=fields)
        if self.listener is not None:
            self.listener(outcome, prog.Progress({t: r for t, r in self.records.items() if r is not None}))

    def _unreadable(self, ticker: str, error: StoreError) -> None:
        self.errors[ticker] = clean_message(f"{FailureKind.STORE}: {error}", 500)
        self.skip.add(ticker)
        log.error("backfill progress unreadable", extra={"ticker": ticker, "detail": str(error)})

    def _deadline_near(self) -> bool:
        return (
            self.remaining_ms is not None and self.remaining_ms() < self.settings.stop_margin_seconds * 1000
        )

    def _out_of_time(self) -> bool:
        """In-flight steps cannot finish before the Lambda's timeout."""
        return self.remaining_ms is not None and self.remaining_ms() <= WAIT_MARGIN_MS

    def _wait_seconds(self) -> float | None:
        """How long to wait for in-flight steps: until a few seconds before the Lambda timeout, and
        in slices of ``STOP_POLL_SECONDS`` when the run can be asked to stop."""
        until = None if self.remaining_ms is None else max(0.0, (self.remaining_ms() - WAIT_MARGIN_MS) / 1000)
        if self.stop_requested is None:
            return until
        return STOP_POLL_SECONDS if until is None else min(until, STOP_POLL_SECONDS)

    def _release_all(self) -> None:
        """Best effort on a crash or Ctrl-C: give back our leases so the next run needs no wait.

        Every ticker this run claimed, not only those in flight: an interrupt can land between a
        claim's write and the step's start. ``release`` drops only this run's own leases.
        """
        now = self.clock()
        for ticker in sorted(self.claimed | {work.ticker for work in self.in_flight.values()}):
            with contextlib.suppress(Exception):  # the leases expire anyway
                self.progress.update(
                    ticker, lambda p, t=ticker: prog.release(p, t, owner=self.owner, now=now)
                )
