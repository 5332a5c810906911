"""`stockpipe run / status / simulator` and the local runner, with the Tiingo simulator on loopback."""

from __future__ import annotations

import io
import json
import re
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from stockpipe.calendar import trading_days
from stockpipe_local import report
from stockpipe_local.cli import main
from stockpipe_local.cli_parser import build_parser
from stockpipe_local.console import Console, render_table
from stockpipe_local.run_loop import Runner, RunOptions
from stockpipe_local.stack_config import StackConfig, StackConfigError, load_stack_config
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
        f"  stock-pipeline:backfillRequestBudget: {min(40, per_hour - 1)}",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TIINGO_API_TOKEN", raising=False)
    monkeypatch.delenv("TIINGO_BASE_URL", raising=False)
    monkeypatch.delenv("MAKELEVEL", raising=False)  # `make test` sets it; the next-step lines depend on it
    return tmp_path


def test_make_run_smoke_with_the_simulator(workdir: Path, capsys) -> None:
    start = date.today() - timedelta(days=400)
    stack = write_stack(workdir / "Pulumi.dev.yaml", ["AAPL", "msft", "XYZ"], start)
    assert main(["run", "--data-dir", "data", "--stack-config", str(stack)]) == 1  # XYZ is parked
    out, err = capsys.readouterr()
    assert "BUILT-IN SIMULATOR" in err
    assert "retry XYZ --data-dir data" in err
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
    assert main(["run", "--data-dir", "data", "--stack-config", str(stack)]) == 1
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
    first = Runner(options, quiet(), today=lambda: date(2024, 6, 13))
    assert first.run().code == 0
    assert first.requests == 2  # one request per ticker for its whole range; the plan ends "today"
    again = Runner(options, quiet(), today=lambda: date(2024, 6, 13))
    again.run()
    assert again.requests == 0
    next_day = Runner(options, quiet(), today=lambda: date(2024, 6, 14))
    next_day.run()
    assert next_day.requests == 2  # the daily catch-up: one request per ticker
    marker = json.loads((workdir / "data/backfill/local-catchup.json").read_text())
    assert marker == {"AAPL": "2024-06-14", "SPY": "2024-06-14"}
    same_day = Runner(options, quiet(), today=lambda: date(2024, 6, 14))
    same_day.run()
    assert same_day.requests == 0


def quiet(err: io.StringIO | None = None) -> Console:
    return Console(err or io.StringIO(), io.StringIO())


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
        tickers=[
            "AAPL",
            "MSFT",
            "GOOGL",
            "AMZN",
            "NVDA",
            "META",
            "TSLA",
            "JPM",
            "SPY",
            "QQQ",
            "IBM",
            "KO",
            "V",
        ],
        start_date=date(2023, 6, 1),
        chunk_months=1,
        requests_per_hour=5,
        use_simulator=False,
        token=TEST_TOKEN,
        base_url=simulator.base_url,
    )
    err = io.StringIO()
    runner = Runner(options, quiet(err), sleep=sleep, clock=fake.clock, today=lambda: simulator.today)
    assert runner.run().code == 0
    assert simulator.count() == 13  # one request per ticker for its whole range (issue 14)
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
    tickers = ["AAPL", "MSFT", "GOOGL", "AMZN"]  # one request each: the fourth waits for the next hour
    write_stack(workdir / "stack.yaml", tickers, date(2023, 6, 1), chunk_months=1, per_hour=3)
    env = {"TIINGO_API_TOKEN": TEST_TOKEN, "TIINGO_BASE_URL": simulator.base_url}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        argv = ["run", "--data-dir", "real", "--stack-config", "stack.yaml", "--max-wait", "0"]
        code = main([*argv, "--chunk-months", "1"])
    assert code == 3
    out, err = capsys.readouterr()
    assert "points at http://127.0.0.1" in err
    assert "Tiingo's hourly quota is used up" in err
    assert "To resume after " in err
    assert "run --data-dir real --stack-config stack.yaml --max-wait 0 --chunk-months 1" in err  # own words
    # one request per ticker, or two when Tiingo answers it empty: at most 8, over three hours at 3 an hour
    assert re.search(
        r"4 tickers: up to 8 requests \(each ticker's pending range in one\), about \d+ more hours at 3 ", err
    )
    assert simulator.count() == 3
    assert "pending" in out
    assert TEST_TOKEN not in out + err


def test_simulated_and_real_data_never_mix(workdir: Path, simulator, capsys) -> None:
    write_stack(workdir / "stack.yaml", ["AAPL"], date.today() - timedelta(days=10))
    assert main(["run", "--stack-config", "stack.yaml", "--simulator", "--data-dir", "d"]) == 0
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIINGO_API_TOKEN", TEST_TOKEN)
        patch.setenv("TIINGO_BASE_URL", simulator.base_url)
        # the token makes --real the default
        assert main(["run", "--stack-config", "stack.yaml", "--data-dir", "d"]) == 2
    _, err = capsys.readouterr()
    assert "d holds prices from the built-in simulator, but this run uses api at 127.0.0.1" in err
    assert "--stack-config stack.yaml --data-dir data-127.0.0.1-" in err  # its own directory, exactly
    assert simulator.count() == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--stack-config", "missing.yaml"], "missing.yaml: no such stack file"),
        (
            ["run", "--tickers", "AAPL", "--start-date", "2999-01-02"],
            "--start-date 2999-01-02 is after today",
        ),
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
    expected = r"(?s)bad.yaml: invalid .*backfillChunkMonths must be between 0"
    with pytest.raises(StackConfigError, match=expected):
        load_stack_config(workdir / "bad.yaml", tickers=["AAPL"])


def test_stack_config_is_read_like_pulumi_writes_it(workdir: Path) -> None:
    stack = load_stack_config(write_stack(workdir / "s.yaml", ["brk.b", "AAPL"], date(2015, 1, 1), 0, 7))
    assert stack.tickers == ["BRK-B", "AAPL"]
    assert (stack.start_date, stack.chunk_months, stack.requests_per_hour) == (date(2015, 1, 1), 0, 7)
    assert load_stack_config(workdir / "absent.yaml").tickers == []


def test_every_option_is_explained_in_help(capsys) -> None:
    parser = build_parser()
    for command in ("run", "status", "retry", "reset", "report"):
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
    header, cells = report.table_rows(rows)
    table = render_table(header, cells, right=report.NUMERIC_COLUMNS)
    assert "2 (2024-06-05, 2024-06-06)" in table
    assert "read_parquet('" in report.duckdb_query("data")
    assert "hive_partitioning=true" in report.duckdb_query("data")


def test_built_in_defaults_are_the_programs_defaults() -> None:
    """One place for defaults: a run without a stack file uses components.config.DEFAULTS."""
    from components.config import DEFAULTS

    built_in = StackConfig()
    assert built_in.start_date == date.fromisoformat(DEFAULTS["backfillStartDate"])
    assert built_in.chunk_months == DEFAULTS["backfillChunkMonths"]
    assert built_in.requests_per_hour == DEFAULTS["tiingoRequestsPerHour"]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            ["  stock-pipeline:tickrs: [AAPL]"],
            "unknown setting stock-pipeline:tickrs (did you mean 'tickers'?)",
        ),
        (['  stock-pipeline:backfillStartDate: "2015-13-01"'], "backfillStartDate must be a date YYYY-MM-DD"),
        (
            ['  stock-pipeline:backfillStartDate: "2999-01-01"'],
            "backfillStartDate 2999-01-01 is in the future",
        ),
        (["  stock-pipeline:tiingoApiToken: plain-text-token"], "tiingoApiToken is stored in plaintext"),
    ],
)
def test_stack_file_is_checked_by_the_programs_validator(workdir: Path, capsys, lines, expected) -> None:
    stack = workdir / "Pulumi.mine.yaml"
    stack.write_text("\n".join(["config:", "  stock-pipeline:tickers: [AAPL]", *lines]) + "\n")
    assert main(["run", "--stack-config", str(stack)]) == 2
    err = capsys.readouterr().err
    assert "Pulumi.mine.yaml: invalid stack configuration" in err
    assert expected in err
    assert "Traceback" not in err


def test_the_repositorys_stack_files_pass_and_dates_unquoted_are_read_as_pulumi_does(workdir: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    for stack in root.glob("Pulumi.*.yaml"):
        assert load_stack_config(stack).tickers
    (workdir / "s.yaml").write_text(
        "config:\n  stock-pipeline:tickers: [AAPL]\n  stock-pipeline:backfillStartDate: 2015-01-02\n"
    )
    assert load_stack_config(workdir / "s.yaml").start_date == date(2015, 1, 2)


def test_the_next_command_repeats_the_users_words_through_make_when_make_ran_it() -> None:
    from stockpipe_local.exits import command_line, with_option

    words = ["run", "--tickers", "AAPL,BRK-B", "--data-dir", "my data"]
    assert command_line(words, env={}) == "stockpipe run --tickers AAPL,BRK-B --data-dir 'my data'"
    assert command_line(words, env={"MAKELEVEL": "1"}) == (
        "make run ARGS='--tickers AAPL,BRK-B --data-dir '\"'\"'my data'\"'\"''"
    )
    assert command_line(["run"], env={"MAKELEVEL": "1"}) == "make run"
    assert with_option(words, "--data-dir", "d2") == ["run", "--tickers", "AAPL,BRK-B", "--data-dir", "d2"]
    assert with_option(["run", "--data-dir=x"], "--data-dir", "y") == ["run", "--data-dir", "y"]
