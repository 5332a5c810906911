"""Ctrl-C and SIGTERM (kill, systemd, docker stop) for `stockpipe`: stop promptly, give the leases back.

Outside a backfill run, the first signal raises KeyboardInterrupt in the main thread (it is sleeping,
waiting for a quota window or a lease, or reading files) and ``cli.main`` prints how to resume.

During an orchestrator run (``stop_deferred``) the signal only asks the run to stop: the run loop polls
``stop_requested`` between steps, lets its in-flight steps finish and record themselves (their leases
given back as usual), and the runner then raises KeyboardInterrupt itself, at a safe point. An
exception raised into ``concurrent.futures.wait`` can land while it holds the futures' locks; the
worker finishing its step then blocks on them for good, and so does the pool's shutdown.

A second signal, or the first one not finished within ``InterruptGuard.GRACE`` seconds (a step stuck
in a long retry), gives this process's leases back from the signal handler's side and leaves at once
with exit code 3.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from stockpipe.errors import StockpipeError
from stockpipe_local.exits import ExitCode, command_line


class _StopState:
    """Process-wide, as signal dispositions are: whether a stop was asked for, and whether it may wait."""

    requested = False
    deferred = 0  # nesting depth of stop_deferred()


_state = _StopState()


def stop_requested() -> bool:
    """True once a signal asked the current run to stop (polled by the backfill run loop)."""
    return _state.requested


@contextlib.contextmanager
def stop_deferred() -> Iterator[None]:
    """Inside: a signal sets ``stop_requested`` instead of raising KeyboardInterrupt wherever it lands.

    On leaving, a stop that was asked for becomes the KeyboardInterrupt it would have been.
    """
    _state.deferred += 1
    try:
        yield
    finally:
        _state.deferred -= 1
    if _state.requested:
        raise KeyboardInterrupt


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


def release_leases_of(args: argparse.Namespace) -> None:
    """After an interrupted ``run`` (once its data directory is known): ``release_own_leases`` there."""
    data_dir = getattr(args, "resolved_data_dir", None)
    if args.command == "run" and data_dir is not None:
        release_own_leases(Path(data_dir))


class InterruptGuard:
    """Installs the SIGINT/SIGTERM handler for one command (main thread only) and restores the old one."""

    GRACE = 15.0

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.finished = threading.Event()
        self.interrupted = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> InterruptGuard:
        _state.requested = False
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
        _state.requested = True
        if not _state.deferred:
            raise KeyboardInterrupt

    def _watchdog(self) -> None:
        if not self.finished.wait(self.GRACE):
            self._leave_now()

    def _leave_now(self) -> None:
        release_leases_of(self.args)
        with contextlib.suppress(Exception):
            sys.stderr.write(f"\nStopped at once; to resume, run:\n  {command_line(self.args.words)}\n")
            sys.stderr.flush()
        os._exit(ExitCode.STOPPED)
