"""`stockpipe`: the local command line (`make run` calls `stockpipe run`).

Subcommands: ``run`` (backfill + daily catch-up on a local directory, then a summary), ``status`` (the
backfill progress of a data directory) and ``simulator`` (serve the Tiingo simulator).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from stockpipe.tickers import normalize_tickers

DESCRIPTION = """\
Run the stock pipeline on this machine: the backfill orchestrator and the price scraper run in-process
on a local directory with the same layout as the S3 bucket (prices/daily/ticker=<T>/year=<Y>/data.parquet).
With TIINGO_API_TOKEN set it talks to the real Tiingo API and keeps to your plan's hourly quota; without
it, it uses the built-in Tiingo simulator (synthetic prices) and says so."""


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


def _seconds(value: str) -> float:
    number = float(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds, got {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stockpipe", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,status,simulator}")

    run = commands.add_parser(
        "run",
        help="backfill and update prices into a local directory, then print a summary",
        description=DESCRIPTION
        + "\n\nRunning it again resumes where it stopped and spends no requests on finished work.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--data-dir",
        type=Path,
        default=Path("data"),
        help="directory for the Parquet dataset and backfill/progress.json (default: ./data)",
    )
    run.add_argument(
        "--stack-config",
        type=Path,
        default=Path("Pulumi.dev.yaml"),
        help="Pulumi stack file to read stock-pipeline:tickers, backfillStartDate, backfillChunkMonths and "
        "tiingoRequestsPerHour from (default: Pulumi.dev.yaml; missing file: built-in defaults)",
    )
    run.add_argument(
        "--tickers",
        type=_tickers,
        help="tickers to process instead of the stack's, comma or space separated (e.g. AAPL,MSFT,BRK-B)",
    )
    run.add_argument(
        "--start-date",
        type=date.fromisoformat,
        help="first day to backfill, YYYY-MM-DD (default: stock-pipeline:backfillStartDate, else 2000-01-01)",
    )
    run.add_argument(
        "--chunk-months",
        type=_non_negative_int,
        help="months of history per request (default: stock-pipeline:backfillChunkMonths, else 6); "
        "0 fetches each ticker's whole range in one request",
    )
    run.add_argument(
        "--max-wait",
        type=_seconds,
        default=3600.0,
        metavar="SECONDS",
        help="real API only: when the hourly quota is used up, wait at most this long for the next "
        "window (with a countdown); if the wait is longer, stop and print when to run again "
        "(default: 3600, i.e. always wait; 0 never waits)",
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
        type=int,
        help="scraper invocations in parallel (default: 4 with the simulator, 2 with the real API)",
    )
    run.add_argument("--verbose", action="store_true", help="also print the JSON logs of every step (stderr)")

    status = commands.add_parser(
        "status",
        help="show the backfill progress of a data directory (done / in progress / parked per ticker)",
        description="Show the backfill progress stored in <data-dir>/backfill/progress.json "
        "(makes no requests).",
    )
    status.add_argument(
        "--data-dir", type=Path, default=Path("data"), help="the directory `run` wrote to (default: ./data)"
    )
    status.add_argument(
        "--stack-config",
        type=Path,
        default=Path("Pulumi.dev.yaml"),
        help="stack file for backfillChunkMonths, used to count chunks left (default: Pulumi.dev.yaml)",
    )

    commands.add_parser(
        "simulator",
        help="serve the Tiingo simulator on loopback until Ctrl-C (see `stockpipe simulator --help`)",
        add_help=False,
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "simulator":
        from stockpipe_local import simulator

        return simulator.main(args_list[1:])
    args = build_parser().parse_args(args_list)
    try:
        if args.command == "status":
            return _status(args)
        return _run(args)
    except ValueError as exc:
        print(f"stockpipe {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nInterrupted; progress is saved. Run the same command again to resume.", file=sys.stderr)
        return 130


@contextmanager
def _quiet_logs(verbose: bool) -> Iterator[None]:
    """The JSON logs are for CloudWatch; locally they go to stderr, and only when asked for.

    Restored afterwards, so calling ``main`` in-process (tests, notebooks) leaves logging as it was.
    """
    from stockpipe.logs import get_logger

    get_logger("cli")  # installs the JSON handler once
    logger = logging.getLogger("stockpipe")
    level = logger.level
    streams = [(h, h.setStream(sys.stderr)) for h in logger.handlers if isinstance(h, logging.StreamHandler)]
    logger.setLevel(logging.INFO if verbose else logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
        for handler, stream in streams:
            if stream is not None:
                handler.setStream(stream)


def _run(args: argparse.Namespace) -> int:
    from stockpipe_local.run_loop import Runner, RunOptions, environment_token
    from stockpipe_local.stack_config import load_stack_config

    stack = load_stack_config(args.stack_config)
    token = environment_token(os.environ)
    use_simulator = token is None if args.simulator is None else args.simulator
    if args.concurrency is not None and args.concurrency < 1:
        raise ValueError("--concurrency must be >= 1")
    options = RunOptions(
        data_dir=args.data_dir,
        tickers=args.tickers or stack.tickers,
        start_date=args.start_date or stack.start_date,
        chunk_months=stack.chunk_months if args.chunk_months is None else args.chunk_months,
        requests_per_hour=stack.requests_per_hour,
        max_wait=args.max_wait,
        use_simulator=use_simulator,
        token=token,
        base_url=os.environ.get("TIINGO_BASE_URL") or None,
        concurrency=args.concurrency,
    )
    with _quiet_logs(args.verbose):
        return Runner(options).run()


def _status(args: argparse.Namespace) -> int:
    from stockpipe_local.report import status_text
    from stockpipe_local.stack_config import load_stack_config

    stack = load_stack_config(args.stack_config)
    print(status_text(args.data_dir, stack.chunk_months))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
