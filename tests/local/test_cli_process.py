"""`stockpipe` as a subprocess: interrupts, a dead network, exit codes, retry/reset, data directories,
JSON output, one-line errors and a clean exit, each as a user meets it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import pytest

from stockpipe.backfill import progress as prog
from stockpipe.backfill.progress_store import ProgressStore
from stockpipe.objectstore import LocalObjectStore
from tests.conftest import TEST_TOKEN
from tests.local.harness import chunks_done, clean_env, leases, progress_json, start, wait_for

pytestmark = pytest.mark.slow
# Enough work to interrupt: one request per ticker (issue 14), so many (generated) tickers
MANY_TICKERS = ",".join(f"SIM{i}" for i in range(40))
MANY = ["--tickers", MANY_TICKERS, "--start-date", "2001-01-01", "--chunk-months", "1"]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: connections are refused


def hold_aapl_lease(store: ProgressStore, owner: str) -> None:
    """AAPL reset, then its first January chunk leased to ``owner`` for ten minutes from now."""
    now = datetime.now(UTC)
    store.update(lambda p: prog.reset(p, ["AAPL"]))
    work = prog.Work("AAPL", "chunk", date(2024, 1, 2), date(2024, 1, 31))
    store.update(lambda p: prog.claim(p, work, owner=owner, now=now, lease_seconds=600))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_gives_its_leases_back_and_the_rerun_starts_at_once(tmp_path, cli, signum):
    data = tmp_path / "data"
    args = ["run", "--data-dir", "data", *MANY]
    first = start(tmp_path, *args)
    wait_for(lambda: chunks_done(data) >= 20, timeout=60, what="the first chunks")
    first.send_signal(signum)
    interrupted = time.monotonic()
    _, err = first.communicate(timeout=30)
    assert first.returncode == 3, err
    assert "Interrupted; progress is saved. To resume, run:" in err
    assert f"stockpipe run --data-dir data --tickers {MANY_TICKERS} --start-date 2001-01-01" in err
    assert "Traceback" not in err
    assert leases(data) == {}  # nothing for the rerun to wait for
    rerun = cli(*args, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert "claimed" not in rerun.stderr
    assert "being fetched by" not in rerun.stderr
    assert time.monotonic() - interrupted < 60  # before: a 300 s lease wait


def test_a_second_interrupt_leaves_at_once_and_still_gives_the_leases_back(tmp_path):
    data = tmp_path / "data"
    first = start(tmp_path, "run", "--data-dir", "data", *MANY)
    wait_for(lambda: chunks_done(data) >= 20, timeout=60, what="the first chunks")
    first.send_signal(signal.SIGINT)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=30)
    assert first.returncode == 3, err
    assert "to resume, run:" in err.lower()
    assert "Traceback" not in err
    assert leases(data) == {}


def test_a_killed_run_does_not_block_the_next_one(tmp_path, cli):
    """SIGKILL gives nobody a chance to clean up: the lease stays, but its owner's process is gone."""
    data = tmp_path / "data"
    args = ["run", "--data-dir", "data", *MANY]
    first = start(tmp_path, *args)
    wait_for(lambda: chunks_done(data) >= 20 and leases(data), timeout=60, what="a lease")
    first.kill()
    first.communicate(timeout=30)
    assert leases(data)  # left behind
    began = time.monotonic()
    rerun = cli(*args, "--max-wait", "0", timeout=120)  # it must not even want to wait
    assert rerun.returncode == 0, rerun.stderr
    assert time.monotonic() - began < 60


def test_a_run_waiting_for_another_runs_lease_proceeds_as_soon_as_it_is_released(tmp_path, cli):
    assert cli("run", "--data-dir", "data", "--tickers", "AAPL", "--start-date", "2024-01-02").returncode == 0
    store = ProgressStore(LocalObjectStore(tmp_path / "data"))
    holder = subprocess.Popen(["sleep", "60"])  # a live process on this host owns the lease
    owner = f"{socket.gethostname()[:30]}-{holder.pid}-deadbeef"
    try:
        hold_aapl_lease(store, owner)
        waiting = start(
            tmp_path, "run", "--data-dir", "data", "--tickers", "AAPL", "--start-date", "2024-01-02"
        )
        time.sleep(3)
        assert waiting.poll() is None  # it waits: the lease is live and its owner alive
        store.update(lambda p: prog.release(p, "AAPL", owner=owner, now=datetime.now(UTC)))
        released = time.monotonic()
        out, err = waiting.communicate(timeout=30)
        assert waiting.returncode == 0, err
        assert time.monotonic() - released < 10  # re-read within seconds, not at the lease's expiry
        assert "AAPL" in out
    finally:
        holder.kill()
        holder.wait()


def test_a_lease_held_past_max_wait_stops_with_exit_3_and_the_time_to_come_back(tmp_path, cli):
    assert cli("run", "--data-dir", "data", "--tickers", "AAPL", "--start-date", "2024-01-02").returncode == 0
    store = ProgressStore(LocalObjectStore(tmp_path / "data"))
    owner = f"{socket.gethostname()[:30]}-{os.getpid()}-cafebabe"  # this test process: alive
    hold_aapl_lease(store, owner)
    result = cli(
        "run", "--data-dir", "data", "--tickers", "AAPL", "--start-date", "2024-01-02", "--max-wait", "0"
    )
    assert result.returncode == 3
    assert f"AAPL being fetched by pid {os.getpid()}" in result.stderr
    assert "To resume after" in result.stderr


def test_a_closed_port_is_a_network_stop_not_a_ticker_failure(tmp_path, cli):
    port = closed_port()
    env = clean_env(TIINGO_API_TOKEN=TEST_TOKEN, TIINGO_BASE_URL=f"http://127.0.0.1:{port}")
    began = time.monotonic()
    result = cli("run", "--data-dir", "data", "--tickers", "AAPL,MSFT", "--start-date", "2024-01-02", env=env)
    assert result.returncode == 3, result.stderr
    assert "cannot reach 127.0.0.1: " in result.stderr  # the host, and the cause
    assert "Stopped early" in result.stderr
    assert "Tiingo requests this run: 0" in result.stdout  # nothing reached Tiingo: no quota spent
    assert time.monotonic() - began < 60  # a short, bounded retry
    records = progress_json(tmp_path / "data")["tickers"]
    assert all(not r["parked"] and r["attempts"] == 0 for r in records.values())
    assert TEST_TOKEN not in result.stdout + result.stderr
    again = cli("run", "--data-dir", "data", "--tickers", "AAPL,MSFT", "--start-date", "2024-01-02", env=env)
    assert again.returncode == 3  # still nothing parked: the network is not the tickers' fault
    assert "parked" not in again.stdout


def test_exit_codes_0_1_2_3(tmp_path, cli, simulator):
    ok = cli("run", "--data-dir", "d", "--tickers", "AAPL", "--start-date", "2024-01-02")
    assert ok.returncode == 0, ok.stderr
    parked = cli("run", "--data-dir", "d", "--tickers", "AAPL,NOPE", "--start-date", "2024-01-02")
    assert parked.returncode == 1
    assert "stockpipe retry NOPE --data-dir d" in parked.stderr
    for argv in (
        ["run", "--tickers", "AAPL", "--start-date", "2999-01-01"],
        ["run", "--stack-config", "nowhere.yaml"],
        ["run", "--tickers", "A$PL"],
        ["run", "--tickers", "AAPL", "--real"],
        ["frobnicate"],
    ):
        usage = cli(*argv)
        assert usage.returncode == 2, (argv, usage.stderr)
        assert "Traceback" not in usage.stderr
    (tmp_path / "stack.yaml").write_text(
        "config:\n  stock-pipeline:tickers: [AAPL, MSFT, SPY]\n  stock-pipeline:tiingoRequestsPerHour: 2\n"
        "  stock-pipeline:backfillRequestBudget: 1\n"
    )
    env = clean_env(TIINGO_API_TOKEN=TEST_TOKEN, TIINGO_BASE_URL=simulator.base_url)
    words = ["run", "--stack-config", "stack.yaml", "--start-date", "2023-01-02", "--chunk-months", "1"]
    stopped = cli(*words, "--max-wait", "0", env=env)
    assert stopped.returncode == 3, stopped.stderr
    assert "hourly quota is used up" in stopped.stderr
    assert (
        "stockpipe run --stack-config stack.yaml --start-date 2023-01-02 --chunk-months 1 --max-wait 0"
        in (stopped.stderr)
    )
    assert simulator.count() == 2


def test_retry_and_reset(tmp_path, cli):
    base = ["--data-dir", "d"]
    assert cli("run", *base, "--tickers", "AAPL,NOPE", "--start-date", "2024-01-02").returncode == 1
    assert progress_json(tmp_path / "d")["tickers"]["NOPE"]["parked"] is True
    retried = cli("retry", "--all-parked", *base)
    assert retried.returncode == 0, retried.stderr
    assert "NOPE un-parked" in retried.stderr
    assert progress_json(tmp_path / "d")["tickers"]["NOPE"]["parked"] is False
    assert "No parked tickers" in cli("retry", "--all-parked", *base).stderr
    assert cli("retry", *base).returncode == 2  # neither tickers nor --all-parked
    assert cli("retry", "ZZZZ", *base).returncode == 1  # nothing known about it
    before = progress_json(tmp_path / "d")["tickers"]["AAPL"]["requests"]
    reset = cli("reset", "AAPL", *base, "--json")
    assert json.loads(reset.stdout) == {"action": "reset", "tickers": ["AAPL"], "unknown": []}
    assert "AAPL" not in progress_json(tmp_path / "d")["tickers"]
    again = cli("run", *base, "--tickers", "AAPL", "--start-date", "2024-01-02", "--json")
    summary = json.loads(again.stdout)
    assert summary["tickers"][0]["state"] == "done"
    assert summary["requests"] == before  # planned and fetched again from the start
    status = cli("status", *base, "--json")
    assert {t["ticker"]: t["state"] for t in json.loads(status.stdout)["tickers"]} == {
        "AAPL": "done",
        "NOPE": "pending",
    }


def test_default_data_directories_keep_simulated_and_real_prices_apart(tmp_path, cli, simulator):
    simulated = cli("run", "--tickers", "AAPL", "--start-date", "2024-01-02")
    assert simulated.returncode == 0
    assert (tmp_path / "data-simulator" / "prices").is_dir()
    assert "data-simulator/prices/daily" in simulated.stdout  # the DuckDB query points there
    real_env = clean_env(TIINGO_API_TOKEN=TEST_TOKEN)
    missing = cli("status", env=real_env)  # with a token the real API's directory is the default
    assert "No backfill progress in data-tiingo yet" in missing.stderr
    other = clean_env(TIINGO_API_TOKEN=TEST_TOKEN, TIINGO_BASE_URL=simulator.base_url)
    served = cli("run", "--tickers", "AAPL", "--start-date", "2024-01-02", env=other)
    assert served.returncode == 0, served.stderr
    host_dir = f"data-127.0.0.1-{simulator.port}"
    assert (tmp_path / host_dir / "prices").is_dir()
    mixed = cli("run", "--tickers", "AAPL", "--data-dir", "data-simulator", env=other)
    assert mixed.returncode == 2
    assert "data-simulator holds prices from the built-in simulator" in mixed.stderr
    assert f"stockpipe run --tickers AAPL --data-dir {host_dir}" in mixed.stderr  # the exact command


def test_json_output_is_parseable_and_plain_output_has_no_control_codes(tmp_path, cli):
    run = cli("run", "--data-dir", "d", "--tickers", "AAPL", "--start-date", "2024-01-02", "--json")
    summary = json.loads(run.stdout)
    assert summary["exit_code"] == 0
    assert summary["source"] == "simulator"
    assert summary["tickers"][0]["rows"] > 100
    assert summary["tickers"][0]["freshness"] == "fresh"
    plain = cli("status", "--data-dir", "d")
    assert "\x1b" not in plain.stdout + plain.stderr + run.stderr
    header = plain.stdout.splitlines()[0].split()
    assert header[:7] == ["ticker", "state", "first", "date", "last", "date", "rows"]
    status = json.loads(cli("status", "--data-dir", "d", "--json").stdout)
    entry = status["tickers"][0]
    assert entry["first"] == "2024-01-02"
    assert entry["missing_count"] == 0
    assert entry["behind"] == 0


def test_expected_failures_are_one_line_without_a_traceback(tmp_path, cli):
    assert cli("run", "--data-dir", "d", "--tickers", "AAPL", "--start-date", "2024-01-02").returncode == 0
    progress = tmp_path / "d" / "backfill" / "tickers" / "AAPL.json"
    body = progress.read_text().replace('"done": true', '"done": "true"')
    progress.write_text(body)
    for argv in (["run", "--tickers", "AAPL"], ["status"], ["retry", "AAPL"], ["reset", "AAPL"]):
        result = cli(*argv, "--data-dir", "d")
        assert result.returncode == 2, (argv, result.stderr)
        assert "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if "error:" in line]
        assert len(errors) == 1
        assert "backfill/tickers/AAPL.json: progress.done" in errors[0]
        assert progress.read_text() == body  # never rewritten


def test_runs_started_together_on_a_new_directory_all_finish(tmp_path):
    """Lost races on backfill/source.json, config/universe.json and the catch-up marker are re-read."""
    args = ["run", "--data-dir", "d", "--tickers", "AAPL,MSFT", "--start-date", "2024-01-02"]
    runs = [start(tmp_path, *args) for _ in range(3)]
    results = [(run.wait(timeout=120), run.stderr.read() if run.stderr else "") for run in runs]
    for code, err in results:
        assert code == 0, err
        assert "Traceback" not in err
    assert json.loads((tmp_path / "d" / "backfill" / "source.json").read_text()) == {"source": "simulator"}


def test_the_process_always_exits_with_mains_code(tmp_path, cli):
    """100 runs on a finished directory (no requests; pyarrow's pool decodes every stored year): before
    the fix about one in 30 aborted at interpreter exit with 134 ("terminate called without an active
    exception"); see stockpipe_local/exits.py."""
    args = ["run", "--data-dir", "d", "--tickers", "AAPL,MSFT,SPY", "--start-date", "2019-01-02"]
    assert cli(*args, "--chunk-months", "0").returncode == 0
    today = date.today() + timedelta(days=0)

    def once(_: int) -> tuple[int, str]:
        result = cli(*args, timeout=120)
        return result.returncode, result.stderr

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(once, range(100)))
    abnormal = [(code, err[-300:]) for code, err in outcomes if code != 0 or "terminate called" in err]
    assert abnormal == [], f"{len(abnormal)} abnormal exits on {today}: {abnormal[:3]}"
