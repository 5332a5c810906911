"""`stockpipe`: the local command line (`make run` calls `stockpipe run`).

Every expected failure is one line on stderr that names the file, key or ticker, and an exit code from
``exits.ExitCode``; a traceback means a bug. Ctrl-C and SIGTERM give this run's leases back before the
process ends, so the next run starts at once (``interrupts``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from stockpipe.errors import StockpipeError, clean_message
from stockpipe_local.console import Console
from stockpipe_local.exits import ExitCode, command_line, exit_now, with_option
from stockpipe_local.interrupts import InterruptGuard, release_leases_of
from stockpipe_local.sources import SourceMismatch, default_data_dir
from stockpipe_local.stack_config import StackConfigError

CONFIG_ERRORS = (StackConfigError, SourceMismatch, ValueError)


def entry() -> None:
    """The `stockpipe` console script: ends the process with main's code (see ``exits.exit_now``)."""
    exit_now(main)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] == "simulator":
        from stockpipe_local.simulator import main as simulator_main

        return simulator_main(words[1:])
    from stockpipe_local.cli_parser import build_parser

    args = build_parser().parse_args(words)
    args.words = words
    console = Console(sys.stderr, sys.stdout)
    try:
        from stockpipe_local import commands

        handler = getattr(commands, args.command)
        with InterruptGuard(args) as guard:
            try:
                return int(handler(args, console))
            except KeyboardInterrupt:
                guard.interrupted = True  # a second signal from here on leaves at once
                return _interrupted(args, console)
    except (*CONFIG_ERRORS, StockpipeError) as exc:  # e.g. an unreadable progress file: a human has to look
        _error(args, exc)
        return ExitCode.USAGE


def _error(args: argparse.Namespace, exc: BaseException) -> None:
    message = str(exc) if isinstance(exc, StackConfigError) else clean_message(exc, limit=2000)
    print(f"stockpipe {args.command}: error: {message}", file=sys.stderr)
    if isinstance(exc, SourceMismatch) and args.command == "run":
        suggestion = with_option(args.words, "--data-dir", str(default_data_dir(args.source)))
        print(f"Use the directory of this source:\n  {command_line(suggestion)}", file=sys.stderr)


def _interrupted(args: argparse.Namespace, console: Console) -> int:
    """Ctrl-C / SIGTERM: give back every lease this process still holds, then say how to resume."""
    release_leases_of(args)
    console.line("")
    console.line("Interrupted; progress is saved. To resume, run:")
    console.command(command_line(args.words))
    return ExitCode.STOPPED


if __name__ == "__main__":
    entry()
