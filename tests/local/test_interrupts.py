"""The CLI's signal handling in-process, with real signals: a signal during an orchestrator run only asks
it to stop (the run loop polls between steps); anywhere else it raises KeyboardInterrupt at once."""

from __future__ import annotations

import argparse
import os
import signal
import time

import pytest

from stockpipe_local.interrupts import InterruptGuard, stop_deferred, stop_requested


def guard() -> InterruptGuard:
    return InterruptGuard(argparse.Namespace(command="status", words=["status"]))


def deliver(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(0.05)  # the handler runs in this (main) thread at the next bytecode boundary


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_run_asks_it_to_stop_and_interrupts_after_it(signum: int) -> None:
    reached = []

    def run() -> None:
        with stop_deferred():
            deliver(signum)
            reached.append(stop_requested())  # still running: the run loop ends between steps

    with guard(), pytest.raises(KeyboardInterrupt):
        run()
    assert reached == [True]


def test_a_signal_outside_a_run_interrupts_at_once() -> None:
    reached = []

    def wait() -> None:
        deliver(signal.SIGINT)
        reached.append("after")

    with guard(), pytest.raises(KeyboardInterrupt):
        wait()
    assert reached == []


def test_each_command_starts_with_no_stop_requested() -> None:
    with guard(), pytest.raises(KeyboardInterrupt):
        deliver(signal.SIGINT)
    with guard():
        assert not stop_requested()
        with stop_deferred():
            pass  # leaves without raising
