"""`make run`: the whole pipeline on one machine, with the same code as the Lambdas.

The orchestrator and the scraper run in-process on a local directory with the bucket's layout. With a
real Tiingo token the runner keeps to the plan's hourly quota (Tiingo resets it on the clock hour): it
waits for the next window with a countdown, or stops with the time to run again. Without a token it
starts the built-in simulator and says so. Running again resumes from backfill/progress.json and spends
no request on finished work.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, TextIO

from stockpipe.backfill import progress as prog
from stockpipe.backfill.invoker import InProcessInvoker
from stockpipe.backfill.orchestrator import BackfillSettings, Orchestrator, TiingoMetadataSource
from stockpipe.backfill.progress_store import ProgressStore
from stockpipe.objectstore import LocalObjectStore, ObjectStore
from stockpipe.universe import save_universe
from stockpipe_local import report
from stockpipe_local.console import Console, ProgressBar

SOURCE_KEY = "backfill/source.json"
CATCHUP_KEY = "backfill/local-catchup.json"
SIMULATOR_TOKEN = "local-simulator-token"  # noqa: S105 - the loopback simulator's dummy token
UNLIMITED = 10**9
QUOTA_SAFETY_SECONDS = 5  # start a new window a little after the clock hour


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


class QuotaWindow:
    """Requests spent in Tiingo's current clock-hour window (as far as this process knows)."""

    def __init__(self, per_hour: int, clock: Callable[[], float]) -> None:
        self.per_hour = per_hour
        self.clock = clock
        self.window = self._index()
        self.spent = 0

    def _index(self) -> int:
        return int(self.clock() // 3600)

    def remaining(self) -> int:
        if self._index() != self.window:
            self.window, self.spent = self._index(), 0
        return max(0, self.per_hour - self.spent)

    def exhaust(self) -> None:
        """Tiingo said 429: whatever we counted, this window is used up."""
        self.remaining()
        self.spent = self.per_hour

    def next_window_at(self) -> float:
        return (self.window + 1) * 3600 + QUOTA_SAFETY_SECONDS


class Runner:
    def __init__(
        self,
        options: RunOptions,
        *,
        err: TextIO | None = None,
        out: TextIO | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        today: Callable[[], date] = date.today,
    ) -> None:
        self.options = options
        self.console = Console(err or sys.stderr)
        self.out = out or sys.stdout
        self.sleep = sleep
        self.clock = clock
        self.today = today
        self.requests = 0
        self.quota = None if options.use_simulator else QuotaWindow(options.requests_per_hour, clock)

    # -------------------------------------------------------------- top level

    def run(self) -> int:
        options = self.options
        if not options.tickers:
            raise ValueError(
                "no tickers: set stock-pipeline:tickers in the stack config or pass --tickers AAPL,MSFT"
            )
        options.data_dir.mkdir(parents=True, exist_ok=True)
        store = LocalObjectStore(options.data_dir)
        with self._tiingo() as (base_url, token, source):
            _check_source(store, source, options.data_dir)
            save_universe(store, options.tickers)
            finished = self._backfill(store, base_url, token)
            if finished:
                finished = self._catch_up(store, base_url, token)
        self._report(store)
        return 0

    @contextmanager
    def _tiingo(self) -> Iterator[tuple[str, str, str]]:
        options = self.options
        if not options.use_simulator:
            from stockpipe.tiingo import DEFAULT_BASE_URL

            if not options.token:
                raise ValueError("--real needs TIINGO_API_TOKEN in the environment")
            url = options.base_url or DEFAULT_BASE_URL
            self.console.line(f"Tiingo: the real API at {url} (token from TIINGO_API_TOKEN)")
            self.console.line(
                f"Quota: {options.requests_per_hour} requests per clock hour "
                "(stock-pipeline:tiingoRequestsPerHour in the stack config)"
            )
            yield url, options.token, "tiingo"
            return
        from stockpipe_local.simulator import TiingoSimulator

        with TiingoSimulator(token=SIMULATOR_TOKEN, today=self.today()) as simulator:
            self.console.line(
                "Tiingo: the BUILT-IN SIMULATOR at "
                f"{simulator.base_url} (synthetic prices, no quota) because TIINGO_API_TOKEN is not set."
            )
            self.console.line(
                "       Set TIINGO_API_TOKEN (and use another --data-dir) to fetch real prices."
            )
            yield simulator.base_url, SIMULATOR_TOKEN, "simulator"

    # -------------------------------------------------------------- backfill loop

    def _components(self, store: ObjectStore, base_url: str, token: str) -> tuple[Orchestrator, Any]:
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
            lease_seconds=300,  # in-process chunks take seconds; a killed run blocks a ticker briefly
        )
        orchestrator = Orchestrator(
            store,
            InProcessInvoker(lambda event: scraper.handle(event, runtime)),
            TiingoMetadataSource(lambda: runtime.client),
            settings,
            today=self.today,
            listener=ProgressBar(self.console, options.tickers, options.chunk_months),
        )
        return orchestrator, runtime

    def _backfill(self, store: ObjectStore, base_url: str, token: str) -> bool:
        """Repeat orchestrator runs until every ticker is done or parked; False when stopped early."""
        options = self.options
        orchestrator, _ = self._components(store, base_url, token)
        quota = self.quota
        bar = orchestrator.listener
        assert isinstance(bar, ProgressBar)
        self.console.status(bar.render(orchestrator.progress.load()))
        idle_runs = 0
        while True:
            budget = UNLIMITED if quota is None else quota.remaining()
            if budget < 1:
                assert quota is not None
                if not self._wait_until(quota.next_window_at(), "Tiingo's hourly quota is used up"):
                    return False
                continue
            summary = orchestrator.run(options.tickers, budget=budget)
            self.requests += summary["requests"]
            if quota is not None:
                quota.spent += summary["requests"]
            stopped = summary["stopped"]
            if stopped == "complete":
                self.console.done()
                return True
            if stopped == "auth":
                self.console.line(f"Tiingo rejected the token: {next(iter(summary['errors'].values()), '')}")
                raise ValueError("authentication failed: check TIINGO_API_TOKEN")
            if stopped == "rate_limited":
                if quota is None:
                    raise ValueError("the simulator answered 429 although it has no quota")
                quota.exhaust()
                continue
            progressed = summary["chunks_done"] or summary["metadata_lookups"] or summary["errors"]
            if stopped == "no_work" and summary["leased_elsewhere"]:
                expiry = prog.lease_expiry_of(
                    orchestrator.progress.load(), summary["leased_elsewhere"], orchestrator.clock()
                )
                if expiry is not None and not self._wait_until(
                    expiry.timestamp() + 1, f"{', '.join(summary['leased_elsewhere'])} claimed by another run"
                ):
                    return False
                continue
            idle_runs = 0 if progressed else idle_runs + 1
            if idle_runs >= 3:
                self.console.line("The backfill is making no progress; see `stockpipe status`.")
                return False

    def _wait_until(self, target: float, reason: str) -> bool:
        """Countdown to ``target`` (epoch seconds); False (with how to resume) when over --max-wait."""
        wait = target - self.clock()
        if wait > self.options.max_wait:
            at = datetime.fromtimestamp(target).strftime("%H:%M")
            self.console.line(
                f"{reason}. Progress is saved in {self.options.data_dir}/backfill/progress.json: "
                f"run `make run` again after {at} to resume."
            )
            return False
        last_plain = math.inf
        while (left := target - self.clock()) > 0:
            minutes, seconds = divmod(int(left), 60)
            text = f"{reason}: waiting {minutes:02d}:{seconds:02d} (Ctrl-C stops; progress is saved)"
            if self.console.tty or last_plain - left >= 60:
                self.console.status(text)
                last_plain = left
            self.sleep(min(1.0, left))
        self.console.done()
        return True

    # -------------------------------------------------------------- catch-up and report

    def _catch_up(self, store: ObjectStore, base_url: str, token: str) -> bool:
        """The daily scraper's job, once per day: from each backfill's end (minus a lookback) to today."""
        from stockpipe import scraper

        today = self.today()
        progress = ProgressStore(store).load()
        marker = store.get(CATCHUP_KEY)
        caught = json.loads(marker.body) if marker else {}
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
            return True
        quota = self.quota
        # The catch-up needs one request per ticker; wait for a fresh window if this one is used up.
        if (
            quota is not None
            and quota.remaining() < len(due)
            and not self._wait_until(quota.next_window_at(), "Waiting for quota for the daily catch-up")
        ):
            return False
        if quota is not None:
            quota.remaining()
            quota.spent += len(due)
        env = {"DATA_DIR": str(self.options.data_dir), "TIINGO_API_TOKEN": token, "TIINGO_BASE_URL": base_url}
        self.console.line(f"Daily catch-up for {len(due)} ticker(s) up to {today}")
        summary = scraper.handle({"tickers": due}, scraper.runtime_from_env(env))
        self.requests += summary["requests"]
        for ticker in summary["succeeded"]:
            caught[ticker] = today.isoformat()
        for ticker, failure in summary["failed"].items():
            self.console.line(f"catch-up failed for {ticker}: {failure['error']}: {failure['message'][:120]}")
        store.put(
            CATCHUP_KEY,
            json.dumps(caught, indent=1, sort_keys=True).encode(),
            expected_version=marker.version if marker else None,
            content_type="application/json",
        )
        return True

    def _report(self, store: ObjectStore) -> None:
        progress = ProgressStore(store).load()
        reports = report.build_report(store, self.options.tickers, progress)
        print(file=self.out)
        print(report.format_table(reports), file=self.out)
        print(file=self.out)
        print(f"Tiingo requests this run: {self.requests}", file=self.out)
        unfinished = [r.ticker for r in reports if r.state not in ("done", "parked")]
        if unfinished:
            print(f"Backfill not finished for: {', '.join(unfinished)} (run `make run` again)", file=self.out)
        print("\nQuery it with DuckDB (`pip install duckdb` or the duckdb CLI):", file=self.out)
        print(report.duckdb_query(self.options.data_dir), file=self.out)


def _check_source(store: ObjectStore, source: str, data_dir: Path) -> None:
    """Never mix simulated and real prices in one data directory."""
    marker = store.get(SOURCE_KEY)
    if marker is None:
        store.put(SOURCE_KEY, json.dumps({"source": source}).encode(), expected_version=None)
        return
    stored = json.loads(marker.body).get("source")
    if stored != source:
        raise ValueError(
            f"{data_dir} holds data from the {stored}, but this run uses the {source}; "
            "use another --data-dir (or delete that directory) to keep them apart"
        )


def environment_token(env: Mapping[str, str]) -> str | None:
    token = env.get("TIINGO_API_TOKEN", "").strip()
    return token or None
