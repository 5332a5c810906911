"""`stockpipe run / status / simulator` and the local runner, with the Tiingo simulator on loopback."""

from __future__ import annotations

import io
import json
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from stockpipe.calendar import trading_days
from stockpipe_local import report
from stockpipe_local.cli import build_parser, main
from stockpipe_local.run_loop import Runner, RunOptions
from stockpipe_local.stack_config import load_stack_config
from tests.conftest import TEST_TOKEN


def write_stack(
    path: Path, tickers: list[str], start: date, chunk_months: int = 6, per_hour: int = 50
) -> Path:
    lines = ["config:", "  aws:region: us-east-1", "  stock-pipeline:tickers:"]
    lines += [f"    - {t}" for t in tickers]
    lines += [
        f'  stock-pipeline:backfillStartDate: "{start.isoformat()}"',
        f"  stock-pipeline:backfillChunkMonths: {chunk_months}",
        f"  stock-pipeline:tiingoRequestsPerHour: {per_hour}",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TIINGO_API_TOKEN", raising=False)
    monkeypatch.delenv("TIINGO_BASE_URL", raising=False)
    return tmp_path


def test_make_run_smoke_with_the_simulator(workdir: Path, capsys) -> None:
    start = date.today() - timedelta(days=400)
    stack = write_stack(workdir / "Pulumi.dev.yaml", ["AAPL", "msft", "XYZ"], start)
    assert main(["run", "--data-dir", "data", "--stack-config", str(stack)]) == 0
    out, err = capsys.readouterr()
    assert "BUILT-IN SIMULATOR" in err
    assert "Tiingo requests this run: 0" not in out
    table = out.split("Tiingo requests")[0]
    assert "AAPL" in table
    assert "MSFT" in table
    assert "parked" in table
    assert "not_found" in table
    # the DuckDB query printed for the user works as printed (relative to the cwd)
    query = out[out.index("SELECT") :].strip()
    rows = dict((t, n) for t, n, *_ in duckdb.sql(query).fetchall())
    expected = len(list(trading_days(start, date.today())))
    assert (
        rows["AAPL"] == rows["MSFT"] == expected or expected - rows["AAPL"] <= 1
    )  # today may not be served yet
    assert f"{rows['AAPL']:,}" in table
    # a second run resumes: nothing left, no requests
    assert main(["run", "--data-dir", "data", "--stack-config", str(stack)]) == 0
    out, _ = capsys.readouterr()
    assert "Tiingo requests this run: 0" in out
    assert main(["status", "--data-dir", "data", "--stack-config", str(stack)]) == 0
    out, _ = capsys.readouterr()
    assert "2 done, 0 in progress, 1 parked, 0 pending; 0 chunk(s) left" in out
    assert "not_found" in out


def test_second_run_makes_no_price_requests_and_catch_up_runs_once_a_day(workdir: Path) -> None:
    start = date(2024, 1, 2)
    options = RunOptions(
        data_dir=workdir / "data",
        tickers=["AAPL", "SPY"],
        start_date=start,
        chunk_months=3,
        requests_per_hour=50,
    )
    out = io.StringIO()
    first = Runner(options, err=io.StringIO(), out=out, today=lambda: date(2024, 6, 13))
    assert first.run() == 0
    assert (
        first.requests == 2 + 2 * 2
    )  # metadata + two 3-month chunks each; plan ends on "today": no catch-up
    again = Runner(options, err=io.StringIO(), out=io.StringIO(), today=lambda: date(2024, 6, 13))
    again.run()
    assert again.requests == 0
    next_day = Runner(options, err=io.StringIO(), out=io.StringIO(), today=lambda: date(2024, 6, 14))
    next_day.run()
    assert next_day.requests == 2  # the daily catch-up: one request per ticker
    marker = json.loads((workdir / "data/backfill/local-catchup.json").read_text())
    assert marker == {"AAPL": "2024-06-14", "SPY": "2024-06-14"}
    same_day = Runner(options, err=io.StringIO(), out=io.StringIO(), today=lambda: date(2024, 6, 14))
    same_day.run()
    assert same_day.requests == 0


class FakeTime:
    def __init__(self, now: float) -> None:
        self.now = now
        self.slept = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


def test_real_api_keeps_to_the_hourly_quota_with_a_countdown(workdir: Path, simulator) -> None:
    fake = FakeTime(1_000 * 3600 + 3500)  # 100 s before a clock hour
    counts: list[int] = []

    def sleep(seconds: float) -> None:
        counts.append(simulator.count())
        fake.sleep(seconds)

    options = RunOptions(
        data_dir=workdir / "real",
        tickers=["AAPL"],
        start_date=date(2023, 6, 1),
        chunk_months=1,
        requests_per_hour=5,
        use_simulator=False,
        token=TEST_TOKEN,
        base_url=simulator.base_url,
    )
    err = io.StringIO()
    runner = Runner(
        options, err=err, out=io.StringIO(), sleep=sleep, clock=fake.clock, today=lambda: simulator.today
    )
    assert runner.run() == 0
    assert simulator.count() == 1 + 13  # metadata + 13 monthly chunks (2023-06-01 .. 2024-06-14)
    assert simulator.count(status=429) == 0
    # 5 requests per clock hour: waited for two new windows, spending at most 5 in each
    windows = sorted(set(counts))
    assert windows == [5, 10]
    assert 3600 + 100 <= fake.slept <= 3600 + 100 + 2 * 5 + 2
    text = err.getvalue()
    assert "Tiingo's hourly quota is used up: waiting" in text
    assert TEST_TOKEN not in text


def test_real_api_stops_with_a_resume_time_when_the_wait_is_too_long(
    workdir: Path, simulator, capsys
) -> None:
    write_stack(workdir / "stack.yaml", ["AAPL"], date(2023, 6, 1), chunk_months=1, per_hour=3)
    env = {"TIINGO_API_TOKEN": TEST_TOKEN, "TIINGO_BASE_URL": simulator.base_url}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        code = main(["run", "--data-dir", "real", "--stack-config", "stack.yaml", "--max-wait", "0"])
    assert code == 0
    out, err = capsys.readouterr()
    assert "Tiingo: the real API at" in err
    assert "run `make run` again after" in err
    assert simulator.count() == 3
    assert "Backfill not finished for: AAPL" in out
    assert TEST_TOKEN not in out + err


def test_simulated_and_real_data_never_mix(workdir: Path, simulator, capsys) -> None:
    write_stack(workdir / "stack.yaml", ["AAPL"], date.today() - timedelta(days=10))
    assert main(["run", "--stack-config", "stack.yaml", "--simulator"]) == 0
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIINGO_API_TOKEN", TEST_TOKEN)
        patch.setenv("TIINGO_BASE_URL", simulator.base_url)
        assert main(["run", "--stack-config", "stack.yaml"]) == 2  # the token makes --real the default
    _, err = capsys.readouterr()
    assert "holds data from the simulator, but this run uses the tiingo" in err
    assert simulator.count() == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--stack-config", "missing.yaml"], "no tickers"),
        (["run", "--tickers", "AAPL", "--real"], "--real needs TIINGO_API_TOKEN"),
    ],
)
def test_run_errors_are_clear(workdir: Path, capsys, argv: list[str], message: str) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_option_values_are_rejected(workdir: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--tickers", "AA$PL"])
    assert "invalid ticker" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "--chunk-months", "-1"])
    (workdir / "bad.yaml").write_text("config:\n  stock-pipeline:backfillChunkMonths: -2\n")
    with pytest.raises(ValueError, match="backfillChunkMonths must be >= 0"):
        load_stack_config(workdir / "bad.yaml")


def test_stack_config_is_read_like_pulumi_writes_it(workdir: Path) -> None:
    stack = load_stack_config(write_stack(workdir / "s.yaml", ["brk.b", "AAPL"], date(2015, 1, 1), 0, 7))
    assert stack.tickers == ["BRK-B", "AAPL"]
    assert (stack.start_date, stack.chunk_months, stack.requests_per_hour) == (date(2015, 1, 1), 0, 7)
    assert load_stack_config(workdir / "absent.yaml").tickers == []


def test_every_option_is_explained_in_help(capsys) -> None:
    parser = build_parser()
    for command in ("run", "status"):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        sub = next(
            a for a in parser._subparsers._group_actions[0].choices.values() if a.prog.endswith(command)
        )
        for action in sub._actions:
            if action.option_strings:
                assert action.help, f"{command} {action.option_strings} has no help"
                assert action.option_strings[-1] in text
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "simulator" in capsys.readouterr().out


def test_simulator_subcommand_delegates(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["simulator", "--help"])
    assert exit_info.value.code == 0
    assert "--quota" in capsys.readouterr().out


def test_report_counts_missing_trading_days() -> None:
    days = [date(2024, 6, 3), date(2024, 6, 4), date(2024, 6, 7)]
    assert report.missing_trading_days(days, days[0], days[-1]) == [date(2024, 6, 5), date(2024, 6, 6)]
    rows = [report.TickerReport("AAPL", "done", days[0], days[-1], 3, (date(2024, 6, 5), date(2024, 6, 6)))]
    table = report.format_table(rows)
    assert "2 (2024-06-05, 2024-06-06)" in table
    assert "read_parquet('" in report.duckdb_query("data")
    assert "hive_partitioning=true" in report.duckdb_query("data")
