"""Drive `stockpipe` as users do: the installed console script, as a subprocess, in a temporary cwd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

STOCKPIPE = Path(sys.executable).with_name("stockpipe")


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without Tiingo settings (a developer's token must not change the test)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIINGO_") and k != "MAKELEVEL"}
    env.update(extra)
    return env


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``cli("run", "--tickers", "AAPL", env={...})``: the finished process, output as text."""
    if not STOCKPIPE.exists():
        pytest.fail(f"{STOCKPIPE} is missing: install the project (make test does)")

    def run(
        *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(STOCKPIPE), *args],
            cwd=tmp_path,
            env=env or clean_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


def start(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(STOCKPIPE), *args],
        cwd=tmp_path,
        env=env or clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def progress_json(data_dir: Path) -> dict:
    """``{"tickers": {T: record}}`` from the per-ticker progress objects (backfill/tickers/<T>.json)."""
    tickers = {}
    for path in sorted((data_dir / "backfill" / "tickers").glob("*.json")):
        record = json.loads(path.read_text())["progress"]
        if record is not None:  # null: reset
            tickers[path.stem] = record
    return {"tickers": tickers}


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def chunks_done(data_dir: Path) -> int:
    try:
        return sum(r.get("chunks_done", 0) for r in progress_json(data_dir)["tickers"].values())
    except (ValueError, OSError):
        return 0  # read while it was being replaced


def leases(data_dir: Path) -> dict[str, str]:
    return {t: r["lease"]["owner"] for t, r in progress_json(data_dir)["tickers"].items() if r.get("lease")}
