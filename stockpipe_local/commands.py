"""The `stockpipe` subcommands: each takes the parsed arguments and the Console, returns an ExitCode."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from stockpipe.settings import API_TOKEN_ENV, TiingoSettings
from stockpipe_local import report as reports
from stockpipe_local.console import Console
from stockpipe_local.exits import ExitCode, command_line, with_option
from stockpipe_local.sources import default_data_dir, source_of
from stockpipe_local.stack_config import DEFAULT_STACK_FILE, StackConfig, load_stack_config


def run(args: argparse.Namespace, console: Console) -> ExitCode:
    from stockpipe_local.run_loop import Runner, RunOptions

    token = _env_token()
    use_simulator = token is None if args.simulator is None else args.simulator
    stack = stack_file(args, args.tickers)
    tickers = args.tickers or stack.tickers
    if not tickers:
        raise ValueError(
            "no tickers: set stock-pipeline:tickers in the stack config or pass --tickers AAPL,MSFT"
        )
    today = date.today()
    if args.start_date is not None:
        check_start_date(args.start_date, today, "--start-date")
    # Chunks are the unit of progress and retry; the orchestrator asks for each ticker's whole pending
    # range in one request whatever their size, so the stack's value serves the real API too.
    chunk_months = stack.chunk_months if args.chunk_months is None else args.chunk_months
    data_dir = resolve_data_dir(args, use_simulator=use_simulator)
    options = RunOptions(
        data_dir=data_dir,
        tickers=tickers,
        start_date=args.start_date or stack.start_date,
        chunk_months=chunk_months,
        requests_per_hour=stack.requests_per_hour,
        max_wait=args.max_wait,
        use_simulator=use_simulator,
        token=token,
        base_url=_env_base_url(),
        concurrency=args.concurrency,
    )
    with quiet_logs(args.verbose):
        result = Runner(options, console).run()
    sentence, next_command = _next_step(args, result)
    if args.json:
        print_json(
            {
                "exit_code": int(result.code),
                "stopped": result.stop.reason if result.stop else None,
                "message": result.stop.message if result.stop else "",
                "resume_after": result.stop.resume_after if result.stop else None,
                "requests": result.requests,
                "data_dir": str(data_dir),
                "source": args.source,
                "tickers": [r.to_json() for r in result.reports],
                "catch_up_failed": result.catch_up_failed,
                "next": next_command or None,
            }
        )
        return result.code
    header, rows = reports.table_rows(result.reports)
    console.text()
    console.table(header, rows, right=reports.NUMERIC_COLUMNS)
    console.text()
    console.text(f"Tiingo requests this run: {result.requests}")
    console.text("\nQuery it with DuckDB (`pip install duckdb` or the duckdb CLI):")
    console.text(reports.duckdb_query(data_dir))
    if result.stop is not None:
        console.warn(f"Stopped early: {result.stop.message}.")
    if next_command:
        console.line(sentence)
        console.command(next_command)
    return result.code


def _next_step(args: argparse.Namespace, result: Any) -> tuple[str, str]:
    """What to run next, in the user's own words: (the sentence, the command); empty when done."""
    if result.stop is not None:
        after = f" after {result.stop.resume_after.astimezone():%H:%M}" if result.stop.resume_after else ""
        return f"Progress is saved. To resume{after}, run:", command_line(args.words)
    parked = result.parked
    if parked:
        retry = with_option(["retry", *parked], "--data-dir", str(args.resolved_data_dir))
        return f"Parked: {', '.join(parked)} (see the notes above). When the cause is fixed:", command_line(
            retry
        )
    if result.catch_up_failed:
        failed = ", ".join(result.catch_up_failed)
        return f"The daily catch-up failed for {failed}; to try again:", command_line(args.words)
    return "", ""


def status(args: argparse.Namespace, console: Console) -> ExitCode:
    from stockpipe.backfill.progress_store import ProgressStore
    from stockpipe.objectstore import LocalObjectStore
    from stockpipe.universe import load_universe

    data_dir = resolve_data_dir(args)
    stack = stack_file(args)
    if not (data_dir / "backfill").is_dir():
        console.line(f"No backfill progress in {data_dir} yet: run `stockpipe run` (or `make run`).")
        return ExitCode.OK
    store = LocalObjectStore(data_dir)
    progress = ProgressStore(store).load()
    try:
        universe = load_universe(store)
    except ValueError:
        universe = []
    tickers = list(dict.fromkeys([*universe, *sorted(progress.tickers)]))
    found = reports.build_report(store, tickers, progress, chunk_months=stack.chunk_months)
    if args.json:
        print_json({"data_dir": str(data_dir), "tickers": [r.to_json() for r in found]})
        return ExitCode.OK
    header, rows = reports.table_rows(found, with_plan=True)
    console.table(header, rows, right=reports.NUMERIC_COLUMNS)
    console.text()
    left = sum(r.chunks_left or 0 for r in found if r.state not in ("done", "parked"))
    console.text(f"{reports.counts_line(found)}; {left} chunk(s) left")
    return ExitCode.OK


def retry(args: argparse.Namespace, console: Console) -> ExitCode:
    names = [t for group in args.tickers for t in group]
    if bool(names) == bool(args.all_parked):
        raise ValueError("name the tickers to retry, or pass --all-parked (not both)")
    orchestrator = _orchestrator(resolve_data_dir(args))
    if args.all_parked:
        names = [t for t, r in orchestrator.progress.load().tickers.items() if r.parked]
        if not names:
            console.line("No parked tickers: nothing to retry.")
            return ExitCode.OK
    with quiet_logs(False):
        answer = orchestrator.handle({"action": "retry", "tickers": names})
    return _answer(args, console, answer, "un-parked")


def reset(args: argparse.Namespace, console: Console) -> ExitCode:
    names = [t for group in args.tickers for t in group]
    orchestrator = _orchestrator(resolve_data_dir(args))
    with quiet_logs(False):
        answer = orchestrator.handle({"action": "reset", "tickers": names})
    return _answer(args, console, answer, "reset")


def _orchestrator(data_dir: Path) -> Any:
    """The orchestrator for the manual events; it reads and writes progress only (no Tiingo, no token)."""
    from stockpipe.backfill.invoker import InProcessInvoker
    from stockpipe.backfill.orchestrator import Orchestrator
    from stockpipe.objectstore import LocalObjectStore

    if not (data_dir / "backfill").is_dir():
        raise ValueError(f"{data_dir} has no backfill progress (pass the --data-dir that `run` wrote to)")

    def no_tiingo(*_: Any) -> Any:
        raise AssertionError("retry and reset never fetch")

    return Orchestrator(LocalObjectStore(data_dir), InProcessInvoker(no_tiingo), no_tiingo)  # type: ignore[arg-type]


def _answer(args: argparse.Namespace, console: Console, answer: dict[str, Any], verb: str) -> ExitCode:
    if args.json:
        print_json(answer)
    else:
        if answer["tickers"]:
            console.line(f"{', '.join(answer['tickers'])} {verb}; the next run picks them up:")
            console.command(command_line(with_option(["run"], "--data-dir", str(args.resolved_data_dir))))
        if answer["unknown"]:
            console.warn(
                f"No progress for {', '.join(answer['unknown'])} in {args.resolved_data_dir}: nothing to do."
            )
    return ExitCode.FAILED if answer["unknown"] and not answer["tickers"] else ExitCode.OK


def report(args: argparse.Namespace, console: Console) -> ExitCode:
    from stockpipe_local.html_report import write_report

    data_dir = resolve_data_dir(args)
    if not (data_dir / "prices").is_dir():
        raise ValueError(f"{data_dir} holds no prices yet: run `stockpipe run` first (or pass --data-dir)")
    output = args.output or data_dir / "report.html"
    written = write_report(data_dir, output, tickers=args.tickers)
    console.line(f"Wrote {written} ({written.stat().st_size / 1e6:.1f} MB, opens offline in any browser)")
    return ExitCode.OK


# ---------------------------------------------------------------- shared by the commands


@contextmanager
def quiet_logs(verbose: bool) -> Iterator[None]:
    """The JSON logs are for CloudWatch; locally they go to stderr, and only when asked for.

    Restored afterwards, so calling ``main`` in-process (tests, notebooks) leaves logging as it was.
    """
    from stockpipe.logs import get_logger

    get_logger("cli")  # installs the JSON handler once
    logger = logging.getLogger("stockpipe")
    level = logger.level
    streams = [(h, h.setStream(sys.stderr)) for h in logger.handlers if isinstance(h, logging.StreamHandler)]
    logger.setLevel(logging.INFO if verbose else logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
        for handler, stream in streams:
            if stream is not None:
                handler.setStream(stream)


def resolve_data_dir(args: argparse.Namespace, *, use_simulator: bool | None = None) -> Path:
    """``--data-dir``, else the default of the source `run` would use now (token set: the real API)."""
    if use_simulator is None:
        use_simulator = _env_token() is None
    args.source = source_of(use_simulator, _env_base_url())
    path = Path(args.data_dir) if args.data_dir is not None else default_data_dir(args.source)
    args.resolved_data_dir = path
    return path


TIINGO_BASE_URL_ENV = TiingoSettings.env_names()["base_url"]


def _env_token() -> str | None:
    """The real API's token, from the environment only (never a file or an option)."""
    return os.environ.get(API_TOKEN_ENV, "").strip() or None


def _env_base_url() -> str | None:
    return os.environ.get(TIINGO_BASE_URL_ENV) or None


def stack_file(args: argparse.Namespace, tickers: Sequence[str] | None = None) -> StackConfig:
    """The validated stack settings: --stack-config must exist; the default file is optional."""
    path = args.stack_config or DEFAULT_STACK_FILE
    return load_stack_config(path, required=args.stack_config is not None, tickers=tickers)


def check_start_date(start: date, today: date, where: str) -> None:
    if start > today:
        raise ValueError(f"{where} {start} is after today ({today}): a backfill starts in the past")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))
