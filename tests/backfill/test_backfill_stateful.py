"""Stateful property test: the REAL orchestrator driving the REAL scraper over the Tiingo simulator.

Hypothesis interleaves bounded runs (requests of up to 1, 2 or all pending chunks), crashes (after the
data write, before it, soft or kill -9 style), universe changes, injected Tiingo faults, retry/reset
actions, clock jumps past lease expiry and corrupt progress objects (a ticker's object: runs go on for
the others and report it, status shows it, retry/reset of it fail with one StoreError naming the object
and the field; the index root: every entry point fails so; the object stays byte-identical, nothing
is spent on it; once fixed, the backfill resumes). After every step every ticker object must parse and
never claim more than is stored, the index must agree with the ticker objects (counts and chunks left),
and every stored row must be the simulator's truth (a gap-free prefix of the ticker's history: sorted,
unique, no foreign dates). At the end, runs without new faults must complete with exactly the
simulator's history for every ticker. A local directory store keeps it fast; the same code over moto
is covered by the fault matrices.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from stockpipe import scraper
from stockpipe.backfill import progress as prog
from stockpipe.backfill.invoker import InProcessInvoker
from stockpipe.backfill.orchestrator import BackfillSettings, Orchestrator, TiingoMetadataSource
from stockpipe.backfill.plan import ONE_DAY, iter_chunks
from stockpipe.backfill.progress_store import ProgressStore
from stockpipe.calendar import trading_days
from stockpipe.errors import FailureKind, StoreError
from stockpipe.layout import BACKFILL_INDEX_KEY
from stockpipe.objectstore import LocalObjectStore, ObjectStore
from stockpipe.prices import rows_to_table
from stockpipe.pricestore import PriceStore
from stockpipe.tiingo import DEFAULT_MAX_RETRIES, TiingoClient
from stockpipe.universe import save_universe
from stockpipe_local.simulator import TiingoSimulator
from tests.backfill.backfill_fakes import CLOCK_START, STOPS_RUN, Crash, MortalStore
from tests.backfill.stateful_faults import CORRUPTIONS, Broken, CrashingInvoker, break_totals
from tests.conftest import TEST_TOKEN
from tests.fakes import Clock

TODAY = date(2024, 6, 14)  # the simulator's today and the plan end
EVENING = datetime(2024, 6, 14, 23, 0, tzinfo=UTC)  # the scraper's clock (fetch time of stored rows)
START = date(2022, 1, 1)  # BACKFILL_START_DATE
# Small histories: one clamped by START, the others starting inside the backfill window.
HISTORY = {
    "AAA": date(2021, 6, 1),
    "BBB": date(2022, 9, 12),
    "CCC": date(2023, 3, 1),
    "DDD": date(2023, 10, 2),
}
UNKNOWN = "NOPE"  # the simulator answers 404: a permanent, per-ticker failure that parks the ticker
CANDIDATES = [*HISTORY, UNKNOWN]
LEASE_SECONDS = 600
MAX_ATTEMPTS = 3
REQUESTS_PER_STEP = 1 + DEFAULT_MAX_RETRIES
# Faults the pipeline must survive. "empty" ([] for a range with trading days) is left out: a chunk that
# answers [] MAX_ATTEMPTS times is accepted as a gap by design, which the exact-data invariant here does not
# model; test_fault_matrix_backfill.py covers the redo, tests/backfill/test_progress.py the acceptance.
FAULTS = [
    "500",
    "502",
    "503",
    "429",
    "reset",
    "truncated",
    "html",
    "not_json_shape",
    "float_volume",
    "monthly_limit",
    "401",
    "403",
]
LATER = st.sampled_from([0, 0, 30, LEASE_SECONDS + 1])  # seconds until the next run (past lease expiry)
Injection = tuple[str, int, str | None]  # fault, count, ticker (None: any)


INJECTION = st.none() | st.tuples(
    st.sampled_from(FAULTS), st.integers(1, 6), st.none() | st.sampled_from(list(HISTORY))
)


class BackfillMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = tempfile.mkdtemp(prefix="backfill-stateful-")
        self.store = LocalObjectStore(self.root)
        self.sim = TiingoSimulator(token=TEST_TOKEN, today=TODAY, tickers=HISTORY, generated_prefix=None)
        self.sim.start()
        self.client = TiingoClient(TEST_TOKEN, base_url=self.sim.base_url, sleep=lambda _: None, timeout=5.0)
        self.runtime = scraper.ScraperRuntime(self.store, self.client, clock=lambda: EVENING)
        self.runtime.settings = scraper.ScraperSettings(concurrency=1)
        self.prices = PriceStore(self.store, sleep=lambda _: None)
        self.clock = Clock(CLOCK_START)
        self.chunk_months = 6
        self.cap = 0
        self.killed = False  # a run was killed (kill -9): index entries may lag until runs visit them
        self.universe: list[str] = []
        self.truth = {
            t: rows_to_table(self.sim.history(t, max(START, first), TODAY)) for t, first in HISTORY.items()
        }

    # ------------------------------------------------------------ helpers

    def orchestrator(
        self, *, concurrency: int = 1, store: ObjectStore | None = None, invoker: Any = None
    ) -> Orchestrator:
        """A fresh orchestrator per run, as each Lambda invocation builds one."""
        handler = invoker or (lambda event: scraper.handle(event, self.runtime))
        config = BackfillSettings(
            start_date=START,
            chunk_months=self.chunk_months,
            request_budget=1000,
            concurrency=concurrency,
            max_attempts=MAX_ATTEMPTS,
            lease_seconds=LEASE_SECONDS,
            requests_per_hour=0,
            max_chunks_per_request=self.cap,
        )
        return Orchestrator(
            store or self.store,
            InProcessInvoker(handler),
            TiingoMetadataSource(lambda: self.client),
            config,
            clock=self.clock,
            today=lambda: TODAY,
        )

    def save_universe(self, tickers: list[str]) -> None:
        self.universe = list(tickers)
        save_universe(self.store, self.universe)

    def load_progress(self) -> prog.Progress:
        return ProgressStore(self.store).load()  # raises for anything malformed

    def run_until_complete(self) -> dict[str, Any]:
        """Runs with a large budget (leases of crashed runs expire in between) until 'complete'."""
        summary: dict[str, Any] = {}
        for _ in range(60):
            self.clock.now += timedelta(seconds=LEASE_SECONDS + 1)
            summary = self.orchestrator(concurrency=2).run()
            if summary["stopped"] == "complete":
                return summary
        raise AssertionError(f"the backfill never completed: {summary}")

    # ------------------------------------------------------------ rules

    @initialize(
        tickers=st.lists(st.sampled_from(CANDIDATES), min_size=1, max_size=3, unique=True),
        chunk_months=st.sampled_from([6, 12]),
        cap=st.sampled_from([0, 1, 2]),
    )
    def setup(self, tickers: list[str], chunk_months: int, cap: int) -> None:
        self.chunk_months = chunk_months
        self.cap = cap  # chunks per request (0: all pending)
        self.save_universe(tickers)

    @rule(concurrency=st.sampled_from([1, 2]), fault=INJECTION, later=LATER)
    def big_run(self, concurrency: int, fault: Injection | None, later: int) -> None:
        """Room for several chunks per run, so backfills get somewhere between the faults."""
        self.run(budget=30, concurrency=concurrency, fault=fault, later=later)

    @rule(budget=st.integers(1, 12), concurrency=st.sampled_from([1, 2]), fault=INJECTION, later=LATER)
    def run(self, budget: int, concurrency: int, fault: Injection | None, later: int) -> None:
        """A bounded run ``later`` seconds on, maybe under a fault (unconsumed faults stay armed)."""
        self.clock.now += timedelta(seconds=later)
        if fault is not None:
            name, count, ticker = fault
            self.sim.inject(name, count=count, ticker=ticker)
        before = self.sim.count()
        summary = self.orchestrator(concurrency=concurrency).run(budget=budget)
        spent = self.sim.count() - before
        assert summary["requests"] == spent  # the budget counts real HTTP requests, retries included
        assert spent <= max(budget, REQUESTS_PER_STEP)  # a step's worst case may exceed a tiny budget
        assert summary["stopped"] in {"complete", "no_work", "budget", "rate_limited", "auth", "network"}
        assert set(summary["done"]) | set(summary["parked"]) <= set(self.universe)
        kinds = {error.split(":")[0] for error in summary["errors"].values()}
        if kinds & STOPS_RUN:
            assert summary["stopped"] not in {"complete", "no_work"}, summary  # no run goes on after it
            event("run stopped by quota or auth")
        elif kinds:
            event("run with a failed step")
        event(f"run stopped: {summary['stopped']}")
        if summary["parked"]:
            event("run with a parked ticker")

    def has_work(self) -> bool:
        """Some universe ticker is neither done nor parked (a crash then has something to interrupt)."""
        progress = self.load_progress()
        return any(
            (record := progress.get(t)) is None or not (record.done or record.parked) for t in self.universe
        )

    @precondition(lambda self: self.has_work())
    @rule(
        at=st.integers(1, 3),
        after_write=st.booleans(),
        hard=st.booleans(),
        concurrency=st.sampled_from([1, 2]),
        later=LATER,
    )
    def crash(self, at: int, after_write: bool, hard: bool, concurrency: int, later: int) -> None:
        """A run dies at its ``at``-th chunk; ``hard``: like kill -9, its leases stay behind."""
        self.clock.now += timedelta(seconds=later)
        store = MortalStore(self.store)
        invoker = CrashingInvoker(self.runtime, store, at=at, after_write=after_write, hard=hard)
        crashed = False
        try:
            self.orchestrator(concurrency=concurrency, store=store, invoker=invoker.handle).run(budget=40)
        except Crash:
            crashed = True
        assert crashed == (invoker.calls >= at)  # a crash is never swallowed; no crash, no exception
        self.killed = self.killed or (crashed and hard)
        event(f"crashed={crashed} hard={hard} after_write={after_write}")

    @rule(ticker=st.sampled_from(CANDIDATES))
    def toggle_ticker(self, ticker: str) -> None:
        """Add the ticker to the universe, or remove it (its data and progress stay)."""
        if ticker not in self.universe:
            self.save_universe([*self.universe, ticker])
        elif len(self.universe) > 1:
            self.save_universe([t for t in self.universe if t != ticker])

    @rule(
        action=st.sampled_from(["retry", "reset"]),
        tickers=st.lists(st.sampled_from(CANDIDATES), min_size=1, max_size=3, unique=True),
    )
    def operator_action(self, action: str, tickers: list[str]) -> None:
        """What an operator sends: retry (un-park) or reset (forget progress, start over)."""
        before = self.load_progress()
        result = self.orchestrator().handle({"action": action, "tickers": tickers})
        assert result["unknown"] == [t for t in tickers if before.get(t) is None]
        after = self.load_progress()
        for ticker in tickers:
            record = after.get(ticker)
            if action == "reset":
                assert record is None
            elif record is not None:
                assert not record.parked
                assert record.attempts == 0

    def ticker_objects(self) -> list[str]:
        return [key for key in self.store.list_keys("backfill/tickers/") if key.endswith(".json")]

    @precondition(lambda self: bool(self.ticker_objects()))
    @rule(
        corruption=st.sampled_from(sorted(CORRUPTIONS)),
        entry=st.sampled_from(["run", "status", "retry", "reset"]),
        pick=st.integers(0, 10),
    )
    def corrupt_ticker(self, corruption: str, entry: str, pick: int) -> None:
        """A bad ticker object blocks that ticker only, is reported by name and field, never rewritten."""
        keys = self.ticker_objects()
        key = keys[pick % len(keys)]
        ticker = key.rsplit("/", 1)[1][: -len(".json")]
        broken = Broken.make(self.store, key, CORRUPTIONS[corruption])
        field = broken.field
        before = self.sim.count(ticker=ticker)
        where = self.store.describe(key)
        if entry in ("run", "status"):
            if entry == "run":  # it reads the object only when the index says the ticker has work
                summary = self.orchestrator().run(budget=10)
                if ticker in summary["errors"]:
                    assert summary["errors"][ticker].startswith(f"store: {where}: {field}"), summary["errors"]
            asked = self.orchestrator().handle({"action": "status", "tickers": [ticker]})
            shown = asked["tickers"].get(ticker)
            assert shown is not None
            assert shown["error"].startswith(f"{where}: {field}"), shown
        else:
            with pytest.raises(StoreError) as caught:
                self.orchestrator().handle({"action": entry, "tickers": [ticker]})
            assert caught.value.kind == FailureKind.STORE
            assert str(caught.value).startswith(f"{where}: {field}"), str(caught.value)
        broken.assert_untouched(self.store)
        assert self.sim.count(ticker=ticker) == before  # nothing spent on it
        broken.fix(self.store)
        event(f"corrupt ticker object: {corruption} via {entry}")

    @precondition(lambda self: self.store.get(BACKFILL_INDEX_KEY) is not None)
    @rule(entry=st.sampled_from(["run", "status", "retry", "reset"]))
    def corrupt_index(self, entry: str) -> None:
        """A bad index root stops every entry point with one error naming it; nothing written or spent."""
        broken = Broken.make(self.store, BACKFILL_INDEX_KEY, break_totals)
        before = self.sim.count()
        request = {"run": {}, "status": {"action": "status"}}.get(
            entry, {"action": entry, "tickers": self.universe}
        )
        with pytest.raises(StoreError) as caught:
            self.orchestrator().handle(request)
        assert str(caught.value).startswith(f"{self.store.describe(BACKFILL_INDEX_KEY)}: totals.zz"), str(
            caught.value
        )
        broken.assert_untouched(self.store)
        assert self.sim.count() == before
        broken.fix(self.store)
        event(f"corrupt index via {entry}")

    # ------------------------------------------------------------ invariants

    @invariant()
    def status_costs_nothing_and_the_index_agrees(self) -> None:
        before = self.sim.count()
        status = self.orchestrator().status()
        assert self.sim.count() == before
        assert set(self.universe) <= set(status["tickers"])
        assert sum(status["counts"].values()) == len(status["tickers"]) == status["page"]["total"]
        truth = prog.summarize(self.load_progress(), self.universe, chunk_months=self.chunk_months)
        index = self.orchestrator().progress.index.entries(list(truth["tickers"]))
        for ticker, entry in truth["tickers"].items():  # never: work the index does not show
            if entry["state"] in ("pending", "in_progress") and ticker in self.universe:
                assert ticker in index, (ticker, entry)
                assert index[ticker].open, (ticker, entry, index[ticker])
        if self.killed:  # a kill -9 between a ticker's write and its index entry's: the entry lags
            event("index checked after a kill")
            return
        assert status["counts"] == truth["counts"]  # the index's totals are the tickers' own
        assert status["chunks_left"] == truth["chunks_left"]
        assert {t: e["state"] for t, e in status["tickers"].items()} == {
            t: e["state"] for t, e in truth["tickers"].items()
        }

    @invariant()
    def stored_rows_are_the_simulators_truth(self) -> None:
        """Every ticker's stored rows are a gap-free prefix of its history, values identical."""
        for ticker, truth in self.truth.items():
            stored = self.prices.read_ticker(ticker)
            assert stored.num_rows <= truth.num_rows, ticker
            assert stored.equals(truth.slice(0, stored.num_rows)), ticker
        assert self.prices.read_ticker(UNKNOWN).num_rows == 0

    @invariant()
    def progress_is_valid_and_never_ahead_of_the_data(self) -> None:
        progress = self.load_progress()
        for name, record in progress.tickers.items():
            assert record.attempts < MAX_ATTEMPTS or record.parked, name
            if record.parked:
                assert record.last_error is not None, name
                assert record.last_error.split(":")[0] not in STOPS_RUN, name  # quota/auth never park
            if not record.planned:
                assert record.next_start is None, name
                assert not record.done, name
                continue
            assert name in HISTORY, name  # a 404 ticker is never planned
            first = max(START, HISTORY[name])
            if record.metadata == "read":  # Tiingo's own first date; the plan was cut to it
                assert record.first_date == self.sim.first_date(name)
                assert record.start in (START, first), name
            else:  # planned from START; the first day seen is where its prices begin
                assert record.first_date in (None, next(trading_days(first, TODAY))), name
                assert record.start == START, name
            assert record.end == TODAY, name
            assert record.start is not None
            assert record.end is not None
            if record.done:
                assert record.next_start is None, name
                covered = record.end
            else:
                starts = {s for s, _ in iter_chunks(record.start, record.end, self.chunk_months)}
                assert record.next_start in starts, name  # on the chunk grid, inside [start, end]
                covered = record.next_start - ONE_DAY
            wanted = len(list(trading_days(max(record.start, first), covered)))
            assert self.prices.read_ticker(name).num_rows >= wanted, name  # progress never runs ahead

    # ------------------------------------------------------------ the end

    def teardown(self) -> None:
        try:
            if self.universe:
                self.finish()
        finally:
            self.client.close()
            self.sim.stop()
            shutil.rmtree(self.root, ignore_errors=True)

    def finish(self) -> None:
        """No new faults: runs complete; then un-parked tickers complete too, with exact data."""
        summary = self.run_until_complete()
        parked = set(summary["parked"])
        self.assert_complete([t for t in self.universe if t not in parked])
        for _ in range(30):  # faults injected earlier and not yet consumed may park a ticker again
            known_parked = sorted(set(summary["parked"]) & set(HISTORY))
            if not known_parked:
                break
            event("parked tickers retried at the end")
            self.orchestrator().retry(known_parked)
            summary = self.run_until_complete()
        assert summary["parked"] == ([UNKNOWN] if UNKNOWN in self.universe else [])
        self.assert_complete([t for t in self.universe if t in HISTORY])
        # every universe ticker was visited since any kill: its entry agrees with its object now
        index = self.orchestrator().progress.index.entries(self.universe)
        records = self.load_progress()
        assert {t: index[t].state for t in self.universe} == {
            t: prog.ticker_state(records.get(t)) for t in self.universe
        }
        again = self.orchestrator().run()
        assert again["requests"] == 0  # finished work costs nothing
        assert again["stopped"] == "complete"

    def assert_complete(self, tickers: list[str]) -> None:
        status: Mapping[str, Any] = self.orchestrator().status()["tickers"]
        for ticker in tickers:
            assert status[ticker]["state"] == "done", (ticker, status[ticker])
            stored: pa.Table = self.prices.read_ticker(ticker)
            assert stored.equals(self.truth[ticker]), ticker  # from max(start, first date) to plan end


BackfillMachine.TestCase.settings = settings(
    max_examples=20,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestBackfillStateful = BackfillMachine.TestCase
