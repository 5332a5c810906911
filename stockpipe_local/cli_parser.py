"""The `stockpipe` command line: every subcommand and option, each with its help text."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from stockpipe.tickers import normalize_tickers
from stockpipe_local.sources import DEFAULT_DATA_DIRS, SIMULATOR, TIINGO
from stockpipe_local.stack_config import DEFAULT_STACK_FILE

DESCRIPTION = f"""\
Run the stock pipeline on this machine: the backfill orchestrator and the price scraper run in-process
on a local directory with the same layout as the S3 bucket (prices/daily/ticker=<T>/year=<Y>/data.parquet).
With TIINGO_API_TOKEN set it talks to the real Tiingo API, keeps to your plan's hourly quota and writes
to ./{DEFAULT_DATA_DIRS[TIINGO]}; without it, it uses the built-in Tiingo simulator (synthetic prices)
and writes to ./{DEFAULT_DATA_DIRS[SIMULATOR]}.

exit codes: 0 everything requested is done; 1 finished with failed or parked tickers; 2 usage or
configuration error; 3 stopped early (quota, network, another run, Ctrl-C) with work left."""

COMMANDS = ("run", "status", "retry", "reset", "report", "simulator")
DATA_DIR_HELP = (
    f"the data directory (default: ./{DEFAULT_DATA_DIRS[TIINGO]} when TIINGO_API_TOKEN is set, "
    f"else ./{DEFAULT_DATA_DIRS[SIMULATOR]})"
)


def _tickers(value: str) -> list[str]:
    try:
        return normalize_tickers(t for t in value.replace(",", " ").split() if t)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {number}")
    return number


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {number}")
    return number


def _seconds(value: str) -> float:
    number = float(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds, got {value}")
    return number


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {value!r}") from None


def _data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None, help=DATA_DIR_HELP)


def _stack_config(parser: argparse.ArgumentParser, used_for: str) -> None:
    parser.add_argument(
        "--stack-config",
        type=Path,
        default=None,
        help=f"Pulumi stack file to read {used_for} from, checked by the Pulumi program's own validator "
        f"(default: {DEFAULT_STACK_FILE} when it exists, else built-in defaults)",
    )


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def build_parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="stockpipe", description=DESCRIPTION, formatter_class=raw)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")

    run = commands.add_parser(
        "run",
        help="backfill and update prices into a local directory, then print a summary",
        description=DESCRIPTION
        + "\n\nRunning it again resumes where it stopped and spends no requests on finished work.",
        formatter_class=raw,
    )
    _data_dir(run)
    _stack_config(
        run, "stock-pipeline:tickers, backfillStartDate, backfillChunkMonths and tiingoRequestsPerHour"
    )
    run.add_argument(
        "--tickers",
        type=_tickers,
        help="tickers to process instead of the stack's, comma or space separated (e.g. AAPL,MSFT,BRK-B)",
    )
    run.add_argument(
        "--start-date",
        type=_day,
        help="first day to backfill, YYYY-MM-DD, not after today (default: stock-pipeline:backfillStartDate, "
        "else 2000-01-01); an earlier date than before extends the history",
    )
    run.add_argument(
        "--chunk-months",
        type=_non_negative_int,
        help="months per chunk, the unit of progress and retry (default: stock-pipeline:backfillChunkMonths, "
        "else 6; 0 = the whole range as one chunk); each ticker's pending chunks are asked for in one "
        "request whatever their size",
    )
    run.add_argument(
        "--max-wait",
        type=_seconds,
        default=3600.0,
        metavar="SECONDS",
        help="wait at most this long for the next hourly quota window or for another run's claim on a "
        "ticker (with a countdown); if the wait would be longer, stop (exit 3) and print when to run "
        "again (default: 3600, i.e. always wait; 0 never waits)",
    )
    source = run.add_mutually_exclusive_group()
    source.add_argument(
        "--simulator",
        dest="simulator",
        action="store_true",
        default=None,
        help="use the built-in Tiingo simulator (default when TIINGO_API_TOKEN is not set)",
    )
    source.add_argument(
        "--real",
        dest="simulator",
        action="store_false",
        help="use the real Tiingo API with TIINGO_API_TOKEN (default when it is set); "
        "TIINGO_BASE_URL overrides the API address",
    )
    run.add_argument(
        "--concurrency",
        type=_positive_int,
        help="scraper invocations in parallel (default: 4 with the simulator, 2 with the real API)",
    )
    run.add_argument("--verbose", action="store_true", help="also print the JSON logs of every step (stderr)")
    _json(run)

    status = commands.add_parser(
        "status",
        help="per ticker: state, first/last stored date, rows, missing trading days, freshness",
        description="Show what a data directory holds and the backfill's progress (makes no requests).",
    )
    _data_dir(status)
    _stack_config(status, "backfillChunkMonths (to count chunks left)")
    _json(status)

    retry = commands.add_parser(
        "retry",
        help="un-park tickers so the next run tries them again (the Lambda's retry event)",
        description="Un-park tickers: attempts start from zero, the plan and stored prices are kept. "
        "The next `stockpipe run` picks them up.",
    )
    retry.add_argument(
        "tickers", nargs="*", type=_tickers, help="tickers to un-park (comma or space separated)"
    )
    retry.add_argument("--all-parked", action="store_true", help="un-park every parked ticker")
    _data_dir(retry)
    _json(retry)

    reset = commands.add_parser(
        "reset",
        help="forget tickers' backfill progress so the next run plans them again (the Lambda's reset event)",
        description="Forget tickers' progress: the next run reads their metadata again and starts over. "
        "Stored prices are kept (the new backfill upserts over them).",
    )
    reset.add_argument(
        "tickers", nargs="+", type=_tickers, help="tickers to forget (comma or space separated)"
    )
    _data_dir(reset)
    _json(reset)

    report = commands.add_parser(
        "report",
        help="write one self-contained HTML page: coverage heatmap, freshness, adjusted-close charts",
        description="Write a self-contained HTML report of a data directory (opens with no network): "
        "a ticker x year coverage heatmap of missing NYSE trading days, freshness per ticker, and per "
        "ticker an adjusted-close chart with split and dividend markers.",
    )
    _data_dir(report)
    report.add_argument(
        "--output",
        "-o",
        type=Path,
        default=None,
        help="the HTML file to write (default: <data-dir>/report.html)",
    )
    report.add_argument("--tickers", type=_tickers, help="only these tickers (default: every stored ticker)")

    commands.add_parser(
        "simulator",
        help="serve the Tiingo simulator on loopback until Ctrl-C; prints its URL and token",
        add_help=False,
    )
    return parser
