"""`stockpipe run` in a pseudo-terminal 80 columns wide (TIOCSWINSZ), as a user in tmux sees it."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from tests.local.harness import STOCKPIPE, clean_env

pytestmark = pytest.mark.slow
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
REDRAW = "\r\x1b[2K"  # rich's live display: back to column 0, clear the line, draw it again


def run_in_terminal(cwd: Path, *args: str, columns: int = 80, timeout: float = 120) -> tuple[int, str]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = clean_env(TERM="xterm-256color")
    env.pop("COLUMNS", None)
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [str(STOCKPIPE), *args],
        cwd=cwd,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
        else:
            process.kill()
            raise AssertionError(f"still running after {timeout}s")
    finally:
        os.close(master)
    return process.wait(timeout=10), b"".join(chunks).decode("utf-8", "replace")


def test_progress_at_80_columns_is_one_redrawn_line_with_elapsed_rate_and_eta(tmp_path):
    code, screen = run_in_terminal(
        tmp_path,
        "run",
        "--data-dir",
        "d",
        "--tickers",
        ",".join([*(f"SIM{i}" for i in range(20)), "NOPE"]),  # a request each: steps to redraw
        "--start-date",
        "2012-01-02",
        "--chunk-months",
        "1",
    )
    assert code == 1  # NOPE is parked
    redraws = [ANSI.sub("", part.split("\r\n")[0]) for part in screen.split(REDRAW)[1:]]
    progress = [line for line in redraws if "tickers" in line]
    assert len(progress) >= 5
    for line in progress:
        assert len(line) <= 80, line  # never wraps: a redraw stays one line
    # (the chunk rate reads "-/s" while each request finishes a whole ticker: issue 14's one request each)
    assert any(
        re.search(r"\d+/\d+ .*\d+/21 tickers \d:\d\d:\d\d (?:[\d.]+|-)/s \d:\d\d:\d\d", line)
        for line in progress
    )
    # between two redraws nothing but the line itself (or a message printed above it)
    for part in screen.split(REDRAW)[1:-1]:
        text = ANSI.sub("", part)
        assert "\n" not in text or "failed" in text or "NOPE" in text, text
    # every line the terminal shows fits, tables included; colours are used on a terminal
    for line in re.split(r"\r\n|\r|\n", ANSI.sub("", screen)):
        assert len(line) <= 80, line
    assert "\x1b[3" in screen
    assert "NOPE note: not_found" in ANSI.sub("", screen).replace("\r\n", " ")
    # words are never cut: the parked ticker's message arrives whole
    assert "Ticker 'NOPE' not found" in ANSI.sub("", screen).replace("\r\n", " ")
