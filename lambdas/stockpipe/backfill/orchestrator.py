"""The backfill run loop: plan tickers from metadata, then invoke the scraper chunk by chunk.

Limits, all per run: a request budget (counted in real HTTP requests: metadata lookups plus what the
scraper reports, retries included), a bounded number of concurrent invocations, and a deadline (stop
launching before the Lambda timeout). Every step is claimed in progress.json (a lease, via CAS) before it
starts, so overlapping runs never do the same chunk at the same time; a crashed run's lease expires.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any, Protocol

from stockpipe.backfill import progress as prog
from stockpipe.backfill.events import ActionEvent, Event, RunEvent, parse_event
from stockpipe.backfill.invoker import InvokeError, Invoker
from stockpipe.backfill.progress_store import ProgressStore
from stockpipe.calendar import trading_days
from stockpipe.errors import StockpipeError
from stockpipe.layout import FUNCTION_DIMENSION, BackfillMetric
from stockpipe.logs import emf_fields, get_logger
from stockpipe.objectstore import ObjectStore
from stockpipe.settings import DEFAULT_MAX_RETRIES, env_date, env_int
from stockpipe.universe import load_universe

log = get_logger("backfill")

# Failures that are not the ticker's fault: they stop the run and never count towards parking.
GLOBAL_FAILURES = frozenset({"auth", "rate_limited", "skipped"})


@dataclass(frozen=True)
class BackfillSettings:
    start_date: date = date(2000, 1, 1)
    chunk_months: int = 6
    request_budget: int = 40
    concurrency: int = 2
    max_attempts: int = 5
    # Requests one step is assumed to cost at worst before it starts (the scraper reports the real count
    # afterwards): one request plus the client's retries, so the budget holds even under faults.
    requests_per_step: int = 1 + DEFAULT_MAX_RETRIES
    lease_seconds: int = 960  # longer than the longest possible synchronous invoke (15 min)
    stop_margin_seconds: int = 60  # launch nothing once the Lambda has less time than this left
    # The plan's hourly quota: a run never budgets more than one hour's worth (0: no quota).
    requests_per_hour: int = 50

    @property
    def effective_budget(self) -> int:
        if self.requests_per_hour:
            return min(self.request_budget, self.requests_per_hour)
        return self.request_budget

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BackfillSettings:
        return cls(
            start_date=env_date(env, "BACKFILL_START_DATE", cls.start_date),
            chunk_months=env_int(env, "BACKFILL_CHUNK_MONTHS", cls.chunk_months),
            request_budget=env_int(env, "BACKFILL_REQUEST_BUDGET", cls.request_budget),
            concurrency=env_int(env, "BACKFILL_CONCURRENCY", cls.concurrency, minimum=1),
            max_attempts=env_int(env, "BACKFILL_MAX_ATTEMPTS", cls.max_attempts, minimum=1),
            requests_per_step=env_int(env, "BACKFILL_REQUESTS_PER_STEP", cls.requests_per_step, minimum=1),
            lease_seconds=env_int(env, "BACKFILL_LEASE_SECONDS", cls.lease_seconds, minimum=1),
            stop_margin_seconds=env_int(env, "BACKFILL_STOP_MARGIN_SECONDS", cls.stop_margin_seconds),
            requests_per_hour=env_int(env, "TIINGO_REQUESTS_PER_HOUR", cls.requests_per_hour),
        )


@dataclass(frozen=True)
class MetadataResult:
    """A metadata lookup: Tiingo's first and last price dates (None: no prices), or the error."""

    first_date: date | None
    requests: int
    error_kind: str | None = None
    message: str = ""
    last_date: date | None = None


class MetadataSource(Protocol):
    def lookup(self, ticker: str) -> MetadataResult: ...


class TiingoMetadataSource:
    """Metadata through the Tiingo client, built on first use (status/retry/reset never need the token)."""

    def __init__(self, client_factory: Callable[[], Any]) -> None:
        self._factory = client_factory
        self._client: Any = None

    def _get_client(self) -> Any:
        if self._client is None:
            self._client = self._factory()
        return self._client

    def lookup(self, ticker: str) -> MetadataResult:
        from stockpipe.tiingo import RequestStats

        stats = RequestStats()
        try:
            metadata = self._get_client().get_metadata(ticker, stats=stats)
        except StockpipeError as exc:
            return MetadataResult(None, stats.requests, exc.kind, str(exc)[:300])
        return MetadataResult(metadata.start_date, stats.requests, last_date=metadata.end_date)


@dataclass(frozen=True)
class StepOutcome:
    """What one step (metadata lookup or chunk) did; applied to progress as a pure transition."""

    work: prog.Work
    requests: int
    ok: bool
    rows: int = 0
    first_date: date | None = None
    last_date: date | None = None
    error_kind: str | None = None
    message: str = ""
    duration_ms: int = 0

    @property
    def stops_run(self) -> bool:
        return self.error_kind in GLOBAL_FAILURES


Listener = Callable[[StepOutcome, prog.Progress], None]


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_owner() -> str:
    """A run id for leases: host, pid and a random part (unique across overlapping runs)."""
    return f"{socket.gethostname()[:30]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Orchestrator:
    def __init__(
        self,
        store: ObjectStore,
        invoker: Invoker,
        metadata: MetadataSource,
        settings: BackfillSettings | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
        today: Callable[[], date] | None = None,
        listener: Listener | None = None,
        progress_store: ProgressStore | None = None,
        function_name: str | None = None,
    ) -> None:
        self.store = store
        self.invoker = invoker
        self.metadata = metadata
        self.settings = settings or BackfillSettings()
        self.clock = clock
        self.today = today or (lambda: clock().date())
        self.listener = listener
        self.progress = progress_store or ProgressStore(store)
        self.function_name = function_name or os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")

    # ------------------------------------------------------------ entry points

    def handle(self, event: Any, *, remaining_ms: Callable[[], int] | None = None) -> dict[str, Any]:
        """Dispatch a raw or parsed event; ValueError (nothing changed) for a malformed one."""
        parsed: Event = event if isinstance(event, RunEvent | ActionEvent) else parse_event(event)
        if isinstance(parsed, RunEvent):
            return self.run(parsed.tickers, remaining_ms=remaining_ms)
        if parsed.action == "status":
            return self.status()
        if parsed.action == "retry":
            return self.retry(parsed.tickers)
        return self.reset(parsed.tickers)

    def status(self) -> dict[str, Any]:
        """Per ticker: done / in_progress / parked / pending and chunks left (costs no request)."""
        try:
            universe = load_universe(self.store)
        except ValueError:
            universe = []
        summary = prog.summarize(self.progress.load(), universe, chunk_months=self.settings.chunk_months)
        return {"action": "status", **summary}

    def retry(self, tickers: Iterable[str]) -> dict[str, Any]:
        """Un-park tickers (attempts from zero); the next run picks them up."""
        names = list(tickers)
        before = self.progress.load()
        now = self.clock()
        self.progress.update(lambda p: prog.retry(p, names, now=now))
        unknown = [t for t in names if before.get(t) is None]
        log.info("backfill retry", extra={"tickers": names, "unknown": unknown})
        return {"action": "retry", "tickers": [t for t in names if t not in unknown], "unknown": unknown}

    def reset(self, tickers: Iterable[str]) -> dict[str, Any]:
        """Forget the tickers' progress: the next run reads metadata again and starts over."""
        names = list(tickers)
        before = self.progress.load()
        self.progress.update(lambda p: prog.reset(p, names))
        unknown = [t for t in names if before.get(t) is None]
        log.info("backfill reset", extra={"tickers": names, "unknown": unknown})
        return {"action": "reset", "tickers": [t for t in names if t not in unknown], "unknown": unknown}

    # ------------------------------------------------------------ the run loop

    def run(
        self,
        tickers: Iterable[str] | None = None,
        *,
        remaining_ms: Callable[[], int] | None = None,
        budget: int | None = None,
    ) -> dict[str, Any]:
        """One bounded run; returns what it did and what is left (the rest is for the next run)."""
        run = _Run(self, list(tickers) if tickers else load_universe(self.store), remaining_ms, budget)
        return run.execute()

    # ------------------------------------------------------------ one step (worker threads)

    def execute_step(self, work: prog.Work) -> StepOutcome:
        """Run one claimed step; never raises for an ordinary failure (it becomes the outcome)."""
        started = time.monotonic()
        if work.kind == "metadata":
            result = self.metadata.lookup(work.ticker)
            outcome = StepOutcome(
                work,
                result.requests,
                ok=result.error_kind is None,
                first_date=result.first_date,
                last_date=result.last_date,
                error_kind=result.error_kind,
                message=result.message,
            )
        else:
            outcome = self._invoke_chunk(work)
        duration = round((time.monotonic() - started) * 1000)
        return replace(outcome, duration_ms=duration)

    def _invoke_chunk(self, work: prog.Work) -> StepOutcome:
        assert work.start is not None
        assert work.end is not None
        event = {
            "tickers": [work.ticker],
            "start_date": work.start.isoformat(),
            "end_date": work.end.isoformat(),
        }
        reserve = self.settings.requests_per_step
        try:
            summary = self.invoker.invoke(event)
        except InvokeError as exc:
            return StepOutcome(work, reserve, ok=False, error_kind=exc.kind, message=str(exc)[:300])
        except Exception as exc:  # a bug or an unexpected client error: recorded, never fatal to the run
            return StepOutcome(work, reserve, ok=False, error_kind="internal", message=_describe(exc))
        requests = _as_int(summary.get("requests"), reserve)
        done = summary["succeeded"].get(work.ticker)
        if isinstance(done, dict):
            rows = _as_int(done.get("rows"), 0)
            if rows == 0 and next(trading_days(work.start, work.end), None) is not None:
                # Tiingo answered [] for trading days: a glitch until proven otherwise (see progress).
                message = f"{work.ticker}: no rows for the trading days of {work.start}..{work.end}"
                return StepOutcome(work, requests, ok=False, error_kind=prog.EMPTY, message=message)
            return StepOutcome(work, requests, ok=True, rows=rows)
        failed = summary.get("failed", {}).get(work.ticker)
        if isinstance(failed, dict):
            kind = str(failed.get("error") or "error")
            return StepOutcome(
                work, requests, ok=False, error_kind=kind, message=str(failed.get("message", ""))[:300]
            )
        return StepOutcome(
            work, requests, ok=False, error_kind="bad_summary", message="ticker missing from summary"
        )

    def apply(self, outcome: StepOutcome, owner: str) -> Callable[[prog.Progress], prog.Progress]:
        """The pure transition for ``outcome`` (re-applied by the store after a lost race)."""
        work, now, settings = outcome.work, self.clock(), self.settings
        if outcome.error_kind == prog.EMPTY and work.start is not None and work.end is not None:
            start, end = work.start, work.end
            return lambda p: prog.record_empty_chunk(
                p,
                work.ticker,
                start,
                end,
                requests=outcome.requests,
                owner=owner,
                now=now,
                max_attempts=settings.max_attempts,
            )
        if not outcome.ok:
            return lambda p: prog.record_failure(
                p,
                work.ticker,
                kind=outcome.error_kind or "error",
                message=outcome.message,
                requests=outcome.requests,
                owner=owner,
                now=now,
                max_attempts=settings.max_attempts,
                count_attempt=not outcome.stops_run,
            )
        if work.kind == "metadata":
            plan_day = self.today()
            return lambda p: prog.record_metadata(
                p,
                work.ticker,
                outcome.first_date,
                last_date=outcome.last_date,
                backfill_start=settings.start_date,
                plan_day=plan_day,
                requests=outcome.requests,
                owner=owner,
                now=now,
            )
        start, end = work.start, work.end
        assert start is not None
        assert end is not None
        return lambda p: prog.record_chunk(
            p,
            work.ticker,
            start,
            end,
            rows=outcome.rows,
            requests=outcome.requests,
            owner=owner,
            now=now,
        )


class _Run:
    """State of one ``Orchestrator.run`` (kept out of the orchestrator so runs never share it)."""

    def __init__(
        self,
        orchestrator: Orchestrator,
        universe: list[str],
        remaining_ms: Callable[[], int] | None,
        budget: int | None,
    ) -> None:
        self.o = orchestrator
        self.settings = orchestrator.settings
        self.universe = universe
        self.remaining_ms = remaining_ms
        self.budget = self.settings.effective_budget if budget is None else budget
        self.owner = new_owner()
        self.spent = 0
        self.skip: set[str] = set()
        self.leased_elsewhere: set[str] = set()
        self.in_flight: dict[Future[StepOutcome], prog.Work] = {}
        self.stopped: str | None = None
        self.counts = {"chunks_done": 0, "chunks_failed": 0, "metadata_lookups": 0, "rows_written": 0}
        self.errors: dict[str, str] = {}

    def execute(self) -> dict[str, Any]:
        started = time.monotonic()
        snapshot = self.o.progress.load()
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
                    self.stopped = "deadline"
                    abandoned = True
                    break
                for future in done:
                    outcome = future.result()  # a crash (BaseException) keeps the step in in_flight
                    snapshot = self._finish(self.in_flight.pop(future), outcome)
        except BaseException:
            self._release_all()
            raise
        finally:
            pool.shutdown(wait=not abandoned, cancel_futures=True)
        return self._summary(snapshot, time.monotonic() - started)

    def _launch(self, snapshot: prog.Progress, pool: ThreadPoolExecutor) -> prog.Progress:
        # A budget smaller than one step's worst case still allows one step at a time.
        reserve = max(1, min(self.settings.requests_per_step, self.budget))
        while self.stopped is None and len(self.in_flight) < self.settings.concurrency:
            if self._deadline_near():
                self.stopped = "deadline"
                break
            work = self._pick(snapshot)
            if work is None:
                break
            if self.spent + reserve * (len(self.in_flight) + 1) > self.budget:
                self.stopped = "budget"
                break
            now = self.o.clock()
            try:
                snapshot = self.o.progress.update(
                    lambda p, w=work, n=now: prog.claim(
                        p, w, owner=self.owner, now=n, lease_seconds=self.settings.lease_seconds
                    )
                )
            except prog.ClaimRejected as exc:
                log.info("step skipped", extra={"ticker": work.ticker, "reason": str(exc)})
                self.skip.add(work.ticker)
                snapshot = self.o.progress.load()
                if prog.lease_is_live(snapshot.get(work.ticker) or prog.TickerProgress(), now, self.owner):
                    self.leased_elsewhere.add(work.ticker)
                continue
            self.in_flight[pool.submit(self.o.execute_step, work)] = work
        return snapshot

    def _pick(self, snapshot: prog.Progress) -> prog.Work | None:
        """Metadata lookups first (they size the whole plan for 1 request each), then chunks in order."""
        busy = {work.ticker for work in self.in_flight.values()}
        now = self.o.clock()
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
        snapshot = self.o.progress.update(self.o.apply(outcome, self.owner))
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
            self.errors[work.ticker] = f"{outcome.error_kind}: {outcome.message}"[:300]
            self.skip.add(work.ticker)  # retried by a later run, up to max_attempts
            if outcome.stops_run and self.stopped is None:
                self.stopped = outcome.error_kind
            record = snapshot.get(work.ticker)
            fields.update(
                error=outcome.error_kind, detail=outcome.message, parked=bool(record and record.parked)
            )
            log.warning("backfill step failed", extra=fields)
        if self.o.listener is not None:
            self.o.listener(outcome, snapshot)
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
        """Best effort on a crash or Ctrl-C: give back our leases so the next run needs no wait."""
        tickers = {work.ticker for work in self.in_flight.values()}
        now = self.o.clock()
        with contextlib.suppress(Exception):  # the leases expire anyway
            self.o.progress.update(lambda p: _release_many(p, tickers, self.owner, now))

    def _summary(self, snapshot: prog.Progress, seconds: float) -> dict[str, Any]:
        status = prog.summarize(snapshot, self.universe, chunk_months=self.settings.chunk_months)
        universe_states = {t: status["tickers"][t]["state"] for t in self.universe}
        unfinished = [t for t, s in universe_states.items() if s not in ("done", "parked")]
        stopped = self.stopped or ("complete" if not unfinished else "no_work")
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
                **emf_fields(metrics, dimensions={FUNCTION_DIMENSION: self.o.function_name}),
            },
        )
        return summary


def _release_many(
    progress: prog.Progress, tickers: Iterable[str], owner: str, now: datetime
) -> prog.Progress:
    for ticker in tickers:
        progress = prog.release(progress, ticker, owner=owner, now=now)
    return progress


def _as_int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:250]}"
