"""`stockpipe`: the local command line (`make run` calls `stockpipe run`).

Every expected failure is one line on stderr that names the file, key or ticker, and an exit code from
``exits.ExitCode``; a traceback means a bug. Ctrl-C and SIGTERM give this run's leases back before the
process ends, so the next run starts at once.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from stockpipe.errors import StockpipeError, clean_message
from stockpipe_local.console import Console
from stockpipe_local.exits import ExitCode, command_line, exit_now, with_option
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
    except CONFIG_ERRORS as exc:
        _error(args, exc)
        return ExitCode.USAGE
    except StockpipeError as exc:  # e.g. a progress file that cannot be read: a human has to look
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
    data_dir = getattr(args, "resolved_data_dir", None)
    if args.command == "run" and data_dir is not None:
        release_own_leases(Path(data_dir))
    console.line("")
    console.line("Interrupted; progress is saved. To resume, run:")
    console.command(command_line(args.words))
    return ExitCode.STOPPED


def release_own_leases(data_dir: Path) -> None:
    """Best effort: drop leases whose owner is this process (the run loop normally did it already)."""
    from stockpipe.backfill import progress as prog
    from stockpipe.backfill.owners import parse_owner, this_host
    from stockpipe.backfill.progress_store import ProgressStore
    from stockpipe.objectstore import LocalObjectStore

    me = (this_host(), os.getpid())
    store = ProgressStore(LocalObjectStore(data_dir))
    now = datetime.now(UTC)
    with contextlib.suppress(StockpipeError, OSError):  # the leases expire anyway
        store.update(
            lambda p: prog.release_abandoned(
                p, list(p.tickers), is_gone=lambda o: parse_owner(o) == me, now=now
            )
        )


class InterruptGuard:
    """Ctrl-C and SIGTERM (kill, systemd, docker stop) stop a run promptly and give its leases back.

    The first signal raises KeyboardInterrupt in the main thread: the run loop gives its leases back and
    ``main`` prints how to resume. A second signal, or the first one not finished within ``GRACE``
    seconds (a KeyboardInterrupt can land inside a lock of the thread-pool machinery and leave a wait
    that never ends), gives this process's leases back from here and leaves at once with exit code 3.
    """

    GRACE = 15.0

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.finished = threading.Event()
        self.interrupted = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *_: object) -> None:
        self.finished.set()
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: object) -> None:
        if self.interrupted:
            self._leave_now()
        self.interrupted = True
        threading.Thread(target=self._watchdog, name="interrupt-watchdog", daemon=True).start()
        raise KeyboardInterrupt

    def _watchdog(self) -> None:
        if not self.finished.wait(self.GRACE):
            self._leave_now()

    def _leave_now(self) -> None:
        data_dir = getattr(self.args, "resolved_data_dir", None)
        if self.args.command == "run" and data_dir is not None:
            release_own_leases(Path(data_dir))
        with contextlib.suppress(Exception):
            sys.stderr.write(f"\nStopped at once; to resume, run:\n  {command_line(self.args.words)}\n")
            sys.stderr.flush()
        os._exit(ExitCode.STOPPED)


if __name__ == "__main__":
    entry()
