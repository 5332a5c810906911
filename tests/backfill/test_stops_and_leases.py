"""How a run ends early without harm (issue 12, Lambda side): a ``network`` failure stops the run, costs
no request and never counts against a ticker; a crash or Ctrl-C gives the run's leases back before it
ends, so the next run starts at once; a lease whose local owner process is gone can be dropped at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from typing import Any

import pytest

from stockpipe.backfill import progress as prog
from stockpipe.backfill.owners import new_owner, owner_process_gone, parse_owner, this_host
from stockpipe.backfill.progress_store import ProgressStore
from stockpipe.errors import FailureKind
from stockpipe.objectstore import ObjectStore
from tests.backfill.backfill_fakes import World

TICKERS = ["AAPL", "META", "NEWCO"]


def leases(store: ObjectStore) -> dict[str, str]:
    state = ProgressStore(store).load()
    return {name: record.lease.owner for name, record in state.tickers.items() if record.lease is not None}


# ---------------------------------------------------------------- network


def test_no_network_for_metadata_stops_the_run_and_parks_nothing(world: World) -> None:
    known = dict(world.scraper.known)
    world.scraper.known.update({t: date(2030, 1, 1) for t in TICKERS})  # []: the metadata must decide
    world.metadata.error = FailureKind.NETWORK
    for run in range(8):  # more runs than max_attempts
        summary = world.orchestrator(concurrency=1, max_attempts=3).run(TICKERS)
        assert summary["stopped"] == "network"
        assert summary["requests"] == (1 if run == 0 else 0)  # AAPL's first answer, then nothing
        assert summary["parked"] == []
        assert list(summary["errors"]) == ["AAPL"]  # nothing started after the lookup failed
        assert summary["errors"]["AAPL"].startswith("network: ")
    record = ProgressStore(world.store).get("AAPL")
    assert record is not None
    assert (record.attempts, record.parked, record.lease, record.requests, record.metadata) == (
        0,
        False,
        None,
        1,
        "due",
    )
    assert record.last_error is not None
    assert record.last_error.startswith("network: ")
    world.metadata.error = None
    world.scraper.known = known
    assert world.orchestrator().run(TICKERS)["stopped"] == "complete"


def test_no_network_for_a_chunk_stops_the_run_without_an_attempt(world: World) -> None:
    world.orchestrator(request_budget=3, requests_per_step=1, max_chunks_per_request=1).run(TICKERS)
    world.scraper.fail["AAPL"] = FailureKind.NETWORK
    spent = world.requests
    summary = world.orchestrator(concurrency=1, max_attempts=1, max_chunks_per_request=1).run(TICKERS)
    assert summary["stopped"] == "network"
    assert summary["requests"] == 0
    assert world.requests == spent
    assert world.scraper.calls[-1][0] == "AAPL"  # nothing was attempted after it
    record = ProgressStore(world.store).load().get("AAPL")
    assert record is not None
    assert (record.attempts, record.parked) == (0, False)


def test_a_closed_port_as_the_api_is_a_network_stop(world: World) -> None:
    from stockpipe.backfill.steps import TiingoMetadataSource
    from stockpipe.tiingo import TiingoClient

    world.scraper.known["AAPL"] = date(2030, 1, 1)  # [] for its range: the metadata lookup decides
    with socket_closed_port() as url:
        client = TiingoClient("tok-closed-port-0001", base_url=url, sleep=lambda _: None, timeout=2.0)
        orchestrator = world.orchestrator(max_attempts=1)
        orchestrator.metadata = TiingoMetadataSource(lambda: client)
        summary = orchestrator.run(["AAPL"])
    assert summary["stopped"] == "network"
    assert summary["requests"] == 1  # the range's answer; the lookup never reached Tiingo
    assert summary["parked"] == []
    assert summary["errors"]["AAPL"].startswith("network: ")


class socket_closed_port:
    """A loopback URL nothing listens on (bound, then closed)."""

    def __enter__(self) -> str:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        pass


# ---------------------------------------------------------------- leases given back


class Crash(Exception):
    """A bug outside the steps (a step's own exceptions are recorded as ``internal``)."""


@pytest.mark.parametrize("error", [Crash, KeyboardInterrupt, SystemExit])
def test_a_failing_or_interrupted_run_gives_its_leases_back(world: World, error: type[BaseException]) -> None:
    """Crash: the listener (the local display) fails after the first step; KeyboardInterrupt and
    SystemExit: raised inside a step, as a signal handler would."""
    orchestrator = world.orchestrator(concurrency=2, max_chunks_per_request=1)
    world.scraper.delay = 0.05  # a second step is in flight when the first one ends
    if error is Crash:

        def listener(outcome: object, state: object) -> None:
            raise Crash("the display failed")

        orchestrator.listener = listener
    else:

        def die(ticker: str, start: date, end: date) -> None:
            raise error("stop")

        # a first chunk each: the next steps are chunks of planned tickers
        world.orchestrator(request_budget=3, requests_per_step=1, max_chunks_per_request=1).run(TICKERS)
        world.scraper.after_write = die
    with pytest.raises(error):
        orchestrator.run(TICKERS)
    assert leases(world.store) == {}  # the next run needs no wait ...
    world.scraper.after_write = None
    summary = world.orchestrator().run(TICKERS)
    assert summary["leased_elsewhere"] == []
    assert summary["stopped"] == "complete"  # ... and finishes at once


def test_ctrl_c_while_waiting_for_a_step_gives_the_leases_back(world: World) -> None:
    """A real SIGINT, delivered to the main thread while the run waits for its in-flight steps."""
    started = threading.Event()

    def slow(ticker: str, start: date, end: date) -> None:
        started.set()
        time.sleep(3.0)  # bounded: the run waits for it before re-raising; long enough on a loaded machine

    world.scraper.after_write = slow
    timer = threading.Timer(0.0, lambda: started.wait(10) and os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            world.orchestrator(concurrency=2).run(TICKERS)
    finally:
        timer.join(10)
    assert leases(world.store) == {}
    world.scraper.after_write = None
    assert world.orchestrator().run(TICKERS)["leased_elsewhere"] == []


def test_a_requested_stop_ends_the_run_after_its_in_flight_steps(world: World) -> None:
    """Local Ctrl-C (``stop_requested``, polled between steps): nothing new starts, what is in flight
    finishes and is recorded, no lease is left, and the run says ``interrupted``."""
    asked = threading.Event()
    written: list[str] = []

    def ask_after_the_first(ticker: str, start: date, end: date) -> None:
        written.append(ticker)
        asked.set()  # the other step is in flight (delay below): it must finish and count

    world.scraper.delay = 0.3
    world.scraper.after_write = ask_after_the_first
    orchestrator = world.orchestrator(concurrency=2, max_chunks_per_request=1)
    orchestrator.stop_requested = asked.is_set
    summary = orchestrator.run(TICKERS)
    assert summary["stopped"] == "interrupted"
    assert 1 <= len(written) <= 2  # the steps started before the stop, and no other
    # each recorded, none lost (META's first chunk predates its listing: an empty answer, a failure)
    assert summary["chunks_done"] + summary["chunks_failed"] == len(written)
    assert summary["requests"] == len(written)
    assert leases(world.store) == {}
    world.scraper.after_write = None
    assert world.orchestrator().run(TICKERS)["stopped"] == "complete"


# ---------------------------------------------------------------- leases of runs that are gone


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=30)
    return process.pid


def test_owner_process_gone() -> None:
    mine = new_owner()
    assert parse_owner(mine) == (this_host(), os.getpid())
    assert not owner_process_gone(mine)  # this process
    assert not owner_process_gone(f"{this_host()}-{os.getppid()}-abcdef12")  # alive
    assert owner_process_gone(f"{this_host()}-{dead_pid()}-abcdef12")
    assert not owner_process_gone(f"elsewhere-{dead_pid()}-abcdef12")  # another host: cannot tell
    assert not owner_process_gone("a-hand-written-owner")
    assert not owner_process_gone("host-notapid-abcdef12")
    host_with_dashes = "my-laptop-local"
    assert parse_owner(f"{host_with_dashes}-42-abcdef12") == (host_with_dashes, 42)
    assert owner_process_gone(
        f"{host_with_dashes}-42-abcdef12", host=host_with_dashes, alive=lambda pid: False
    )


def test_a_local_run_drops_leases_of_dead_runs_at_once(world: World) -> None:
    """A killed local run (kill -9: no chance to give leases back) blocks nothing when owner_gone is set."""
    one = {"max_chunks_per_request": 1}
    world.orchestrator(request_budget=3, requests_per_step=1, **one).run(TICKERS)  # a first chunk each
    dead = f"{this_host()}-{dead_pid()}-deadbeef"
    now = world.clock()
    store = ProgressStore(world.store)
    planning = prog.Planning(
        chunk_months=6, backfill_start=date(2020, 1, 1), plan_day=now.date(), max_chunks=1
    )
    elsewhere = f"elsewhere-{os.getpid()}-0badf00d"  # another host's run: kept
    for ticker, owner in (("AAPL", dead), ("META", dead), ("NEWCO", elsewhere)):
        work = prog.next_work(store.load([ticker]), ticker, planning=planning, now=now)
        assert work is not None
        store.update(ticker, lambda p, w=work, o=owner: prog.claim(p, w, owner=o, now=now, lease_seconds=900))

    lambda_like: dict[str, Any] = world.orchestrator(**one).run(TICKERS)  # in AWS: only expiry frees it
    assert lambda_like["leased_elsewhere"] == TICKERS
    local = world.orchestrator(**one)
    local.owner_gone = owner_process_gone
    summary = local.run(TICKERS)
    assert summary["done"] == ["AAPL", "META"]
    assert summary["leased_elsewhere"] == ["NEWCO"]
    assert leases(world.store) == {"NEWCO": elsewhere}


def test_a_waiting_runner_learns_when_it_can_go() -> None:
    """lease_expiry_of: the earliest expiry of a live lease blocking the tickers, None when none does."""
    from datetime import UTC, datetime, timedelta

    now = datetime(2024, 6, 14, 22, 0, tzinfo=UTC)
    dead, alive = f"{this_host()}-{dead_pid()}-deadbeef", f"{this_host()}-{os.getppid()}-0a11fe00"
    state = prog.Progress(
        {
            "A": prog.TickerProgress(lease=prog.Lease(dead, now + timedelta(seconds=60))),
            "B": prog.TickerProgress(lease=prog.Lease(alive, now + timedelta(seconds=300))),
            "C": prog.TickerProgress(lease=prog.Lease(alive, now - timedelta(seconds=1))),  # expired
        }
    )
    assert prog.lease_expiry_of(state, ["A", "B", "C"], now) == now + timedelta(seconds=60)
    assert prog.lease_expiry_of(state, ["A", "C"], now, is_gone=owner_process_gone) is None  # go now
    assert prog.lease_expiry_of(state, ["A", "B"], now, is_gone=owner_process_gone) == now + timedelta(
        seconds=300
    )
