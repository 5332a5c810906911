"""`stockpipe run`: the whole pipeline on one machine, with the same code as the Lambdas.

The orchestrator and the scraper run in-process on a local directory with the bucket's layout. Against
the real API the runner keeps to the plan's hourly quota (Tiingo resets it on the clock hour): it waits
for the next window with a countdown, or stops and says when to run again. A run that meets another
run's lease re-reads progress every second and goes on as soon as that lease is given back, expires, or
its owner's process is gone. Running again resumes from the progress under backfill/ and spends no
request on finished work. ``run`` returns a RunResult; the CLI turns it into output and an exit code.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from stockpipe.backfill import progress as prog
from stockpipe.backfill.invoker import InProcessInvoker
from stockpipe.backfill.orchestrator import BackfillSettings, Orchestrator, TiingoMetadataSource
from stockpipe.backfill.owners import owner_process_gone, parse_owner
from stockpipe.backfill.progress_store import ProgressStore
from stockpipe.backfill.run_loop import Stopped
from stockpipe.errors import FailureKind
from stockpipe.objectstore import LocalObjectStore, ObjectStore
from stockpipe.universe import save_universe
from stockpipe_local import report
from stockpipe_local.console import BackfillProgress, Console
from stockpipe_local.exits import ExitCode
from stockpipe_local.interrupts import stop_deferred, stop_requested
from stockpipe_local.sources import (
    SIMULATOR,
    SIMULATOR_TOKEN,
    TIINGO,
    QuotaWindow,
    check_source,
    estimate_requests,
    json_object,
    put_json_merged,
    source_of,
)

CATCHUP_KEY = "backfill/local-catchup.json"
UNLIMITED = 10**9
LEASE_SECONDS = 300  # in-process steps take seconds; a run killed with -9 blocks a ticker this long at most
IDLE_RUNS = 3


class AuthFailed(ValueError):
    """Tiingo refused the token (exit 2: a configuration problem, nothing more will work)."""


@dataclass
class RunOptions:
    data_dir: Path
    tickers: list[str]
    start_date: date
    chunk_months: int
    requests_per_hour: int
    max_wait: float = 3600.0
    use_simulator: bool = True
    token: str | None = None
    base_url: str | None = None
    concurrency: int | None = None  # None: 4 with the simulator, 2 against Tiingo


@dataclass
class Stop:
    """Why a run stopped with work left (exit 3)."""

    reason: str  # quota | network | leased | no_progress
    message: str
    resume_after: datetime | None = None


@dataclass
class RunResult:
    code: ExitCode
    stop: Stop | None
    requests: int
    reports: list[report.TickerReport] = field(default_factory=list)
    catch_up_failed: dict[str, str] = field(default_factory=dict)

    @property
    def parked(self) -> list[str]:
        return [r.ticker for r in self.reports if r.state == "parked"]


class Runner:
    def __init__(
        self,
        options: RunOptions,
        console: Console,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        today: Callable[[], date] = date.today,
    ) -> None:
        self.options = options
        self.console = console
        self.sleep = sleep
        self.clock = clock
        self.today = today
        self.requests = 0
        self.quota = None if options.use_simulator else QuotaWindow(options.requests_per_hour, clock)

    # -------------------------------------------------------------- top level

    def run(self) -> RunResult:
        options = self.options
        options.data_dir.mkdir(parents=True, exist_ok=True)
        store = LocalObjectStore(options.data_dir)
        failed: dict[str, str] = {}
        with self._tiingo() as (base_url, token, source):
            check_source(store, source, options.data_dir)
            save_universe(store, options.tickers)
            if self.quota is not None:
                self._announce_cost(store)
            stop = self._backfill(store, base_url, token)
            progress = ProgressStore(store).load(options.tickers)  # the catch-up writes prices, not progress
            if stop is None:
                stop, failed = self._catch_up(store, base_url, token, progress)
        reports = report.build_report(store, options.tickers, progress, today=self.today())
        if stop is not None:
            code = ExitCode.STOPPED
        elif failed or any(r.state == "parked" for r in reports):
            code = ExitCode.FAILED
        else:
            code = ExitCode.OK
        return RunResult(code, stop, self.requests, reports, failed)

    @contextmanager
    def _tiingo(self) -> Iterator[tuple[str, str, str]]:
        options = self.options
        if not options.use_simulator:
            from stockpipe.tiingo import DEFAULT_BASE_URL

            if not options.token:
                raise ValueError("--real needs TIINGO_API_TOKEN in the environment")
            url = options.base_url or DEFAULT_BASE_URL
            source = source_of(False, url)
            if source == TIINGO:
                self.console.line(f"Tiingo: the real API at {url} (token from TIINGO_API_TOKEN)")
            else:
                self.console.warn(f"Tiingo: TIINGO_BASE_URL points at {url}, not the real API")
            yield url, options.token, source
            return
        from stockpipe_local.simulator import TiingoSimulator

        with TiingoSimulator(token=SIMULATOR_TOKEN, today=self.today()) as simulator:
            self.console.line(
                f"Tiingo: the BUILT-IN SIMULATOR at {simulator.base_url} (synthetic prices, no quota) "
                "because TIINGO_API_TOKEN is not set. Set it to fetch real prices."
            )
            yield simulator.base_url, SIMULATOR_TOKEN, SIMULATOR

    def _announce_cost(self, store: ObjectStore) -> None:
        """Before the first request: how many the run needs and how long the quota makes that take."""
        assert self.quota is not None
        options = self.options
        estimate = estimate_requests(
            ProgressStore(store).load(), options.tickers, chunk_months=options.chunk_months
        )
        self.console.line(
            f"{estimate.tickers} ticker{'s' if estimate.tickers != 1 else ''}: "
            f"{'up to ' if estimate.unplanned else ''}{estimate.requests} "
            f"requests (each ticker's pending range in one), {self.quota.describe(estimate.requests)}; "
            f"quota {self.quota.per_hour} per clock hour (stock-pipeline:tiingoRequestsPerHour)"
        )

    # -------------------------------------------------------------- backfill loop

    def _orchestrator(self, store: ObjectStore, base_url: str, token: str, listener: Any) -> Orchestrator:
        from stockpipe import scraper

        options = self.options
        concurrency = options.concurrency or (4 if options.use_simulator else 2)
        env = {
            "DATA_DIR": str(options.data_dir),
            "TIINGO_API_TOKEN": token,
            "TIINGO_BASE_URL": base_url,
            "TIINGO_REQUESTS_PER_HOUR": "0",  # the runner keeps to the quota itself (clock-hour windows)
            "SCRAPER_CONCURRENCY": str(concurrency),
        }
        runtime = scraper.runtime_from_env(env)
        settings = BackfillSettings(
            start_date=options.start_date,
            chunk_months=options.chunk_months,
            request_budget=UNLIMITED,
            concurrency=concurrency,
            requests_per_hour=0,
            lease_seconds=LEASE_SECONDS,
        )
        return Orchestrator(
            store,
            InProcessInvoker(lambda event: scraper.handle(event, runtime)),
            TiingoMetadataSource(lambda: runtime.client),
            settings,
            today=self.today,
            listener=listener,
            owner_gone=owner_process_gone,  # a local run can tell when a lease's owner process has died
            stop_requested=stop_requested,  # Ctrl-C ends the run between steps (interrupts.stop_deferred)
        )

    def _backfill(self, store: ObjectStore, base_url: str, token: str) -> Stop | None:
        """Repeat orchestrator runs until every ticker is done or parked; a Stop when it cannot go on."""
        options = self.options
        with self.console.progress(options.tickers, options.chunk_months) as display:
            orchestrator = self._orchestrator(store, base_url, token, display)
            display.update(orchestrator.progress.load())
            idle_runs = 0
            while True:
                quota = self.quota
                budget = UNLIMITED if quota is None else quota.remaining()
                if budget < 1:
                    assert quota is not None
                    stop = self._wait_until(
                        quota.next_window_at(), "Tiingo's hourly quota is used up", display
                    )
                    if stop is not None:
                        return stop
                    continue
                with stop_deferred():
                    summary = orchestrator.run(options.tickers, budget=budget)
                self.requests += summary["requests"]
                if quota is not None:
                    quota.spend(summary["requests"])
                stopped = summary["stopped"]
                if stopped == Stopped.COMPLETE:
                    display.finish(orchestrator.progress.load())
                    return None
                if stopped == FailureKind.AUTH:
                    raise AuthFailed(
                        f"Tiingo refused the token: {_first_error(summary)}; check TIINGO_API_TOKEN"
                    )
                if stopped == FailureKind.NETWORK:
                    return Stop("network", _network_message(base_url, _first_error(summary)))
                if stopped == FailureKind.RATE_LIMITED:
                    if quota is None:
                        raise ValueError("the simulator answered 429 although it has no quota")
                    quota.exhaust()
                    continue
                if stopped == Stopped.NO_WORK and summary["leased_elsewhere"]:
                    stop = self._wait_for_leases(orchestrator.progress, summary["leased_elsewhere"], display)
                    if stop is not None:
                        return stop
                    continue
                progressed = summary["chunks_done"] or summary["metadata_lookups"] or summary["errors"]
                idle_runs = 0 if progressed else idle_runs + 1
                if idle_runs >= IDLE_RUNS:
                    return Stop("no_progress", "the backfill is making no progress; see `stockpipe status`")

    def _wait_for_leases(
        self, progress: ProgressStore, tickers: list[str], display: BackfillProgress
    ) -> Stop | None:
        """Re-read progress every second until no other live run holds a lease on ``tickers``."""
        while True:
            now = datetime.fromtimestamp(self.clock(), UTC)
            snapshot = progress.load()
            expiry = prog.lease_expiry_of(snapshot, tickers, now, is_gone=owner_process_gone)
            if expiry is None:
                return None  # released, expired, or its run is gone: the next orchestrator run claims it
            reason = f"{', '.join(tickers)} being fetched by {_holders(snapshot, tickers)}"
            left = expiry.timestamp() - self.clock()
            if left > self.options.max_wait:
                return Stop("leased", f"{reason} until {expiry.astimezone():%H:%M}", expiry)
            minutes, seconds = divmod(int(left), 60)
            display.waiting(f"{reason}: waiting for it (at most {minutes:02d}:{seconds:02d})")
            self.sleep(min(1.0, max(0.05, left)))

    def _wait_until(self, target: float, reason: str, display: BackfillProgress | None) -> Stop | None:
        """Countdown to ``target`` (epoch seconds); a Stop saying when to resume when over --max-wait."""
        if target - self.clock() > self.options.max_wait:
            when = datetime.fromtimestamp(target, UTC)
            return Stop("quota", f"{reason}; the next window opens at {when.astimezone():%H:%M}", when)
        last_plain = math.inf
        while (left := target - self.clock()) > 0:
            minutes, seconds = divmod(int(left), 60)
            text = f"{reason}: waiting {minutes:02d}:{seconds:02d} (Ctrl-C stops; progress is saved)"
            if display is not None and self.console.tty:
                display.waiting(text)
            elif last_plain - left >= 60:
                self.console.line(text)
                last_plain = left
            self.sleep(min(1.0, left))
        return None

    # -------------------------------------------------------------- catch-up

    def _catch_up(
        self, store: ObjectStore, base_url: str, token: str, progress: prog.Progress
    ) -> tuple[Stop | None, dict[str, str]]:
        """The daily scraper's job, once per day: from each backfill's end (minus a lookback) to today."""
        from stockpipe import scraper

        today = self.today()
        marker = store.get(CATCHUP_KEY)
        caught = json_object(marker.body if marker else None, store.describe(CATCHUP_KEY))
        due = [
            t
            for t in self.options.tickers
            if (record := progress.get(t)) is not None
            and record.done
            and not record.parked
            and record.first_date is not None
            and (record.end or today) < today
            and caught.get(t) != today.isoformat()
        ]
        if not due:
            return None, {}
        quota = self.quota
        if quota is not None and quota.remaining() < len(due):
            stop = self._wait_until(quota.next_window_at(), "Waiting for quota for the daily catch-up", None)
            if stop is not None:
                return stop, {}
        env = {"DATA_DIR": str(self.options.data_dir), "TIINGO_API_TOKEN": token, "TIINGO_BASE_URL": base_url}
        self.console.line(f"Daily catch-up for {len(due)} ticker(s) up to {today}")
        summary = scraper.handle({"tickers": due}, scraper.runtime_from_env(env))
        self.requests += summary["requests"]
        if quota is not None:
            quota.spend(summary["requests"])
        put_json_merged(store, CATCHUP_KEY, dict.fromkeys(summary["succeeded"], today.isoformat()))
        network = [f["message"] for f in summary["failed"].values() if f["error"] == FailureKind.NETWORK]
        if network:
            return Stop("network", _network_message(base_url, network[0])), {}
        failed = {t: f"{f['error']}: {f['message']}" for t, f in summary["failed"].items()}
        for ticker, message in failed.items():
            self.console.warn(f"catch-up failed for {ticker}: {message}")
        return None, failed


def _holders(snapshot: prog.Progress, tickers: list[str]) -> str:
    """``pid 4242 on myhost`` for the runs holding leases on ``tickers``."""
    owners = {
        parse_owner(record.lease.owner)
        for ticker in tickers
        if (record := snapshot.get(ticker)) is not None and record.lease is not None
    }
    return ", ".join(sorted(f"pid {pid} on {host}" for host, pid in filter(None, owners))) or "another run"


def _first_error(summary: dict[str, Any]) -> str:
    return next(iter(summary.get("errors", {}).values()), "")


def _network_message(base_url: str, error: str) -> str:
    """``cannot reach api.tiingo.com: <cause>`` (the client's own words when it already says so)."""
    detail = error.split(": ", 1)[1] if error.startswith(f"{FailureKind.NETWORK}: ") else error
    if detail.startswith("cannot reach"):
        return detail
    host = urlsplit(base_url).netloc or base_url
    return f"cannot reach {host}: {detail or 'no connection'}"
