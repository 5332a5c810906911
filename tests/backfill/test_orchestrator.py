"""The run loop over a real moto bucket, with a fake in-process scraper that writes real Parquet."""

from __future__ import annotations

from datetime import date
from typing import Any

import duckdb
import pytest

from stockpipe.backfill import progress as prog
from stockpipe.backfill.invoker import InProcessInvoker
from stockpipe.backfill.orchestrator import BackfillSettings, Orchestrator
from stockpipe.backfill.progress_store import ProgressStore
from stockpipe.objectstore import DelegatingStore, LocalObjectStore, ObjectStore, StoredObject
from stockpipe.pricestore import PriceStore
from stockpipe.universe import save_universe
from tests.backfill.backfill_fakes import KNOWN, TODAY, Crash, World, expected_days
from tests.threads import run_concurrently

START = date(2020, 1, 1)
TICKERS = ["AAPL", "META", "NEWCO"]


def run_until_complete(
    world: World, tickers: list[str] | None = None, **settings: Any
) -> list[dict[str, Any]]:
    summaries = []
    for _ in range(100):
        summary = world.orchestrator(**settings).run(tickers or TICKERS)
        summaries.append(summary)
        if summary["stopped"] == "complete":
            return summaries
    raise AssertionError(f"backfill never completed: {summaries[-1]}")


def assert_history_exact(store: ObjectStore, tickers: list[str] = TICKERS) -> None:
    prices = PriceStore(store)
    for ticker in tickers:
        days = prices.read_ticker(ticker).column("date").to_pylist()
        assert days == expected_days(KNOWN[ticker], START), ticker  # sorted, no gaps, no duplicates


def test_full_backfill_equals_history_read_with_duckdb(tmp_path) -> None:
    world = World(LocalObjectStore(tmp_path), dict(KNOWN))
    summaries = run_until_complete(world, chunk_months=6, concurrency=3)
    assert len(summaries) == 1  # a big enough budget finishes in one run
    summary = summaries[0]
    chunks = len(TICKERS) * prog.count_chunks(START, TODAY, 6)  # each planned from START, not metadata
    assert summary["chunks_done"] == chunks
    assert summary["requests"] == world.requests == len(TICKERS)  # one request per ticker, no metadata
    assert world.metadata.requests == 0
    assert summary["remaining"] == {"tickers": 0, "chunks": 0, "unplanned": 0}
    assert summary["done"] == sorted(TICKERS)
    rows = duckdb.sql(
        f"SELECT ticker, date, count(*) AS n FROM read_parquet('{tmp_path}/prices/daily/*/*/*.parquet', "
        "hive_partitioning=true) GROUP BY ticker, date"
    ).fetchall()
    assert all(n == 1 for _, _, n in rows)  # no duplicates
    for ticker in TICKERS:
        got = sorted(d for t, d, _ in rows if t == ticker)
        assert got == expected_days(KNOWN[ticker], START)
    assert summary["rows_written"] == len(rows)
    # finished work costs nothing: a second run spends no request
    again = world.orchestrator().run(TICKERS)
    assert again["stopped"] == "complete"
    assert again["requests"] == 0
    assert world.requests == len(TICKERS)
    record = ProgressStore(world.store).get("META")
    assert record is not None
    assert (record.start, record.first_date, record.metadata) == (START, KNOWN["META"], None)  # learned


def one_chunk_requests(ticker: str) -> int:
    """Requests of a one-chunk-per-request backfill: a ticker listed after START answers [] first and
    needs the metadata lookup that plans it."""
    if KNOWN[ticker] <= START:
        return prog.count_chunks(START, TODAY, 6)
    return 2 + prog.count_chunks(KNOWN[ticker], TODAY, 6)


def test_budget_is_never_exceeded(world: World) -> None:
    budget = 7
    before = 0
    runs = 0
    for runs in range(1, 50):  # noqa: B007
        # The fake scraper never retries: a step costs exactly 1, so no worst-case reserve is needed.
        summary = world.orchestrator(
            request_budget=budget, concurrency=3, requests_per_step=1, max_chunks_per_request=1
        ).run(TICKERS)
        spent = world.requests - before
        before = world.requests
        assert spent == summary["requests"] <= budget
        if summary["stopped"] == "complete":
            break
        assert summary["stopped"] == "budget"
        assert spent == budget  # a healthy run uses its whole budget
    needed = sum(one_chunk_requests(t) for t in TICKERS)
    assert world.requests == needed  # nothing fetched twice across runs
    assert runs == -(-needed // budget)
    assert_history_exact(world.store)


def test_budget_reserve_makes_the_budget_strict(world: World) -> None:
    """With a reserve per step, a run stops before a step that could overrun the budget."""
    orchestrator = world.orchestrator(
        request_budget=10, requests_per_step=4, concurrency=2, max_chunks_per_request=1
    )
    summary = orchestrator.run(TICKERS)
    assert summary["stopped"] == "budget"
    assert summary["requests"] <= 10 - 4 + 1  # the last step started with room for its worst case


def test_unknown_ticker_is_parked_and_the_rest_finish(world: World) -> None:
    tickers = ["AAPL", "XYZ", "META"]
    run_until_complete(world, tickers)
    status = world.orchestrator().status()
    assert status["tickers"]["XYZ"]["state"] == "parked"
    assert "not_found" in status["tickers"]["XYZ"]["last_error"]
    assert status["tickers"]["AAPL"]["state"] == "done"
    assert_history_exact(world.store, ["AAPL", "META"])
    assert [c for c in world.scraper.calls if c[0] == "XYZ"] == [("XYZ", START, TODAY)]  # one request
    assert world.metadata.requests == 0
    spent = world.requests
    again = world.orchestrator().run(tickers)
    assert again["requests"] == 0
    assert again["parked"] == ["XYZ"]
    assert world.requests == spent


def test_failing_chunks_are_retried_on_later_runs_then_parked(world: World) -> None:
    world.scraper.fail["META"] = "server"
    for attempt in range(1, 4):
        summary = world.orchestrator(max_attempts=3, max_chunks_per_request=1).run(["META", "NEWCO"])
        assert "META" in summary["errors"]
        record = ProgressStore(world.store).load().get("META")
        assert record is not None
        assert record.attempts == attempt
    assert summary["parked"] == ["META"]
    assert summary["stopped"] == "complete"  # NEWCO done, META parked: nothing left to do
    status = world.orchestrator().handle({"action": "status"})
    assert status["tickers"]["META"]["state"] == "parked"
    assert status["tickers"]["META"]["last_error"].startswith("server:")
    # retry un-parks; once the scraper works again the ticker finishes
    assert world.orchestrator().handle({"action": "retry", "tickers": ["meta", "ZZZ"]}) == {
        "action": "retry",
        "tickers": ["META"],
        "unknown": ["ZZZ"],
    }
    del world.scraper.fail["META"]
    run_until_complete(world, ["META", "NEWCO"])
    assert_history_exact(world.store, ["META", "NEWCO"])


def test_quota_errors_stop_the_run_without_parking(world: World) -> None:
    world.scraper.fail["AAPL"] = "rate_limited"
    summary = world.orchestrator(concurrency=1, max_attempts=1).run(TICKERS)
    assert summary["stopped"] == "rate_limited"
    assert summary["parked"] == []
    assert world.scraper.calls == [("AAPL", START, TODAY)]  # nothing more was attempted
    record = ProgressStore(world.store).load().get("AAPL")
    assert record is not None
    assert (record.attempts, record.parked, record.lease) == (0, False, None)


def test_invalid_event_from_orchestrator_is_recorded_not_fatal(world: World) -> None:
    def broken(event: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("unknown event key(s) ['x']")

    orchestrator = Orchestrator(
        world.store,
        InProcessInvoker(broken),
        world.metadata,
        BackfillSettings(start_date=START),
        clock=world.clock,
        today=lambda: TODAY,
    )
    for _ in range(5):  # a request of 9 chunks is halved (not an attempt) down to one chunk, then counted
        summary = orchestrator.run(["NEWCO"])
        assert summary["errors"]["NEWCO"].startswith("invalid_event: ValueError: unknown event key")
    record = ProgressStore(world.store).get("NEWCO")
    assert record is not None
    assert (record.max_chunks, record.attempts, record.parked) == (
        1,
        2,
        False,
    )  # 9 > 4 > 2 > 1, then 2 attempts


def test_crash_after_data_write_before_progress_write(world: World) -> None:
    crashed: list[tuple[str, date]] = []

    def crash_on_third_chunk(ticker: str, start: date, end: date) -> None:
        if ticker == "AAPL" and start == date(2021, 1, 1) and not crashed:
            crashed.append((ticker, start))
            raise Crash

    world.scraper.after_write = crash_on_third_chunk
    with pytest.raises(Crash):
        world.orchestrator(concurrency=1, max_chunks_per_request=1).run(["AAPL"])
    record = ProgressStore(world.store).load().get("AAPL")
    assert record is not None
    assert record.next_start == date(2021, 1, 1)  # the chunk's data is stored, its progress is not
    assert PriceStore(world.store).last_date("AAPL") == date(2021, 6, 30)
    run_until_complete(world, ["AAPL"], max_chunks_per_request=1)
    assert world.scraper.calls.count(("AAPL", date(2021, 1, 1), date(2021, 6, 30))) == 2  # re-done once
    assert_history_exact(world.store, ["AAPL"])  # ... without duplicates


class DyingProgressStore(DelegatingStore):
    """Delegates to the real store until armed; then every progress write "kills the process"."""

    def __init__(self, inner: ObjectStore) -> None:
        super().__init__(inner)
        self.armed = False

    def put(self, key: str, body: bytes, *, expected_version: str | None, content_type: str = "") -> str:
        if self.armed and key.startswith("backfill/"):
            raise Crash
        return super().put(key, body, expected_version=expected_version, content_type=content_type)


def test_hard_crash_leaves_a_lease_that_expires(world: World) -> None:
    dying = DyingProgressStore(world.store)

    def die_after_second_chunk(ticker: str, start: date, end: date) -> None:
        if ticker == "AAPL" and start == date(2020, 7, 1):
            dying.armed = True

    world.scraper.after_write = die_after_second_chunk
    settings = BackfillSettings(start_date=START, concurrency=1, lease_seconds=900, max_chunks_per_request=1)
    orchestrator = Orchestrator(
        dying,
        InProcessInvoker(world.scraper.handle),
        world.metadata,
        settings,
        clock=world.clock,
        today=lambda: TODAY,
        progress_store=ProgressStore(dying),
    )
    with pytest.raises(Crash):
        orchestrator.run(["AAPL", "NEWCO"])
    world.scraper.after_write = None
    # the dead run's lease still holds AAPL: another run leaves it alone and does the rest
    summary = world.orchestrator(concurrency=1, max_chunks_per_request=1).run(["AAPL", "NEWCO"])
    assert summary["leased_elsewhere"] == ["AAPL"]
    assert summary["stopped"] == "no_work"
    assert world.orchestrator().status()["tickers"]["NEWCO"]["state"] == "done"
    # once the lease expires the chunk is redone and the ticker completes
    world.clock.advance(901)
    run_until_complete(world, ["AAPL", "NEWCO"], max_chunks_per_request=1)
    assert_history_exact(world.store, ["AAPL", "NEWCO"])


def test_two_overlapping_runs_share_the_work(world: World) -> None:
    world.scraper.delay = 0.01
    results: dict[str, list[dict[str, Any]]] = {}

    def loop(name: str) -> None:
        results[name] = run_until_complete(world, TICKERS, concurrency=2, max_chunks_per_request=2)

    run_concurrently([lambda name=name: loop(name) for name in ("a", "b")])
    assert world.scraper.overlaps == []  # no chunk was ever in flight in both runs at once
    assert len(set(world.scraper.calls)) == len(world.scraper.calls)  # and none was done twice
    assert world.metadata.requests == 2  # META and NEWCO: their first answer was [] (listed after START)
    chunks = sum(s["chunks_done"] for r in results.values() for s in r)
    assert chunks == sum(prog.count_chunks(max(START, KNOWN[t]), TODAY, 6) for t in TICKERS)
    state = ProgressStore(world.store).load()
    assert all(state.get(t).done for t in TICKERS)  # type: ignore[union-attr]
    assert_history_exact(world.store)


def test_status_retry_reset_events(world: World) -> None:
    save_universe(world.store, ["AAPL", "NEWCO", "XYZ", "META"])
    orchestrator = world.orchestrator(request_budget=2, concurrency=1, requests_per_step=1)
    first = orchestrator.handle({})  # the stored universe, as the scheduler sends
    assert first["stopped"] == "budget"
    status = orchestrator.handle({"action": "status"})
    assert status["counts"]["done"] + status["counts"]["parked"] == 2  # one request each
    assert status["counts"]["pending"] == 2
    assert status["page"] == {"limit": 100, "next": None, "total": 4}
    assert world.orchestrator().handle({})["stopped"] == "complete"  # the other two
    status = orchestrator.handle({"action": "status"})
    assert status["counts"] == {"done": 3, "in_progress": 0, "parked": 1, "pending": 0}
    assert status["tickers"]["XYZ"]["state"] == "parked"
    assert status["tickers"]["AAPL"]["chunks_done"] == 9
    assert status["chunks_left"] == 0
    calls = len(world.scraper.calls)
    assert orchestrator.handle({"action": "reset", "tickers": ["aapl", "ZZZ"]}) == {
        "action": "reset",
        "tickers": ["AAPL"],
        "unknown": ["ZZZ"],
    }
    status = world.orchestrator().status()
    assert status["tickers"]["AAPL"] == {"state": "pending", "chunks_left": None}
    assert status["counts"] == {"done": 2, "in_progress": 0, "parked": 1, "pending": 1}
    assert orchestrator.handle({"action": "retry", "tickers": ["XYZ"]})["tickers"] == ["XYZ"]
    assert world.orchestrator().status()["counts"]["pending"] == 2  # and XYZ: never answered with a range
    summary = world.orchestrator().handle({})
    assert summary["stopped"] == "complete"
    assert summary["parked"] == ["XYZ"]  # 404 again
    assert summary["done"] == ["AAPL", "META", "NEWCO"]
    assert summary["totals"] == {"done": 3, "parked": 1, "leased_elsewhere": 0, "errors": 1}
    assert sorted(world.scraper.calls[calls:]) == [("AAPL", START, TODAY), ("XYZ", START, TODAY)]
    assert world.metadata.requests == 0
    assert_history_exact(world.store, ["AAPL", "NEWCO", "META"])


def backfill_objects(store: ObjectStore) -> dict[str, bytes | None]:
    return {key: (store.get(key) or StoredObject(b"", "")).body for key in store.list_keys("backfill/")}


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"action": "nuke"}, "unknown action 'nuke'"),
        ({"action": "reset"}, "needs 'tickers'"),
        ({"action": "retry", "tickers": ["A$"]}, "invalid ticker"),
        ({"tickers": ["AAPL"], "force": True}, "unknown key.*'force'"),
        ("status", "must be a JSON object"),
    ],
)
def test_malformed_events_raise_and_change_nothing(world: World, event: Any, message: str) -> None:
    world.orchestrator(request_budget=3).run(["AAPL"])
    before = backfill_objects(world.store)
    spent = world.requests
    with pytest.raises(ValueError, match=message):
        world.orchestrator().handle(event)
    assert backfill_objects(world.store) == before
    assert world.requests == spent


def test_new_universe_tickers_are_picked_up_and_finished_ones_cost_nothing(world: World) -> None:
    save_universe(world.store, ["NEWCO"])
    assert world.orchestrator().handle({})["stopped"] == "complete"
    newco_calls = len(world.scraper.calls)
    save_universe(world.store, ["NEWCO", "META"])
    summary = world.orchestrator().handle({})
    assert summary["stopped"] == "complete"
    assert summary["done"] == ["META", "NEWCO"]
    assert all(call[0] == "META" for call in world.scraper.calls[newco_calls:])


def test_stops_launching_before_the_deadline(world: World) -> None:
    assert world.orchestrator().run(TICKERS, remaining_ms=lambda: 59_000)["stopped"] == "deadline"
    assert world.requests == 0
    remaining = iter(range(300_000, -1, -20_000))
    orchestrator = world.orchestrator(concurrency=1, max_chunks_per_request=1)
    summary = orchestrator.run(TICKERS, remaining_ms=lambda: next(remaining))
    assert summary["stopped"] == "deadline"
    assert 0 < summary["requests"] < 10
    state = ProgressStore(world.store).load()
    assert all(record.lease is None for record in state.tickers.values())  # finished steps gave back leases


def test_listener_sees_every_step(world: World) -> None:
    seen: list[tuple[str, str, bool]] = []
    orchestrator = world.orchestrator()
    orchestrator.listener = lambda outcome, state: seen.append(
        (outcome.work.ticker, outcome.work.kind, outcome.ok)
    )
    orchestrator.settings = BackfillSettings(start_date=date(2023, 11, 1), max_chunks_per_request=1)
    orchestrator.run(["NEWCO"])
    assert seen == [("NEWCO", "chunk", True), ("NEWCO", "chunk", True)]
    orchestrator.settings = BackfillSettings(start_date=START)
    seen.clear()
    orchestrator.run(["META"])  # [] for 2020..2024 would be wrong: META is listed in 2021
    assert seen == [("META", "chunk", True)]
