"""``python -m stockpipe_local.simulator`` / ``stockpipe simulator``: serve a simulator until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import date

from stockpipe_local.simulator.faults import Faults
from stockpipe_local.simulator.server import TiingoSimulator

DESCRIPTION = "A Tiingo-compatible end-of-day HTTP server for tests, benchmarks and offline `make run`."


def main(argv: list[str] | None = None) -> int:
    """Serve a simulator until Ctrl-C (or SIGTERM); prints the base URL first, on its own line."""
    parser = argparse.ArgumentParser(prog="stockpipe simulator", description=DESCRIPTION)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--token", default="sim-token", help="the token clients must send")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every response")
    parser.add_argument("--error-rate", type=float, default=0.0, help="probability of an HTTP 500")
    parser.add_argument("--quota", type=int, default=None, help="requests per quota window (default: none)")
    parser.add_argument("--quota-window", type=float, default=3600.0, help="seconds, clock-aligned")
    parser.add_argument("--today", type=date.fromisoformat, default=None, help="YYYY-MM-DD (default: today)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic prices (default: 0)")
    args = parser.parse_args(argv)
    sim = TiingoSimulator(
        token=args.token,
        today=args.today,
        quota=args.quota,
        quota_window=args.quota_window,
        faults=Faults(latency=args.latency, error_rate=args.error_rate),
        seed=args.seed,
        host=args.host,
        port=args.port,
    )
    done = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: done.set())
    with sim:
        print(sim.base_url, flush=True)  # first line of stdout: scripts read the URL from here
        print(
            f"Tiingo simulator at {sim.base_url} (today={sim.today}), token: {sim.token}\n"
            f"  curl -H 'Authorization: Token {sim.token}' {sim.base_url}/tiingo/daily/AAPL\n"
            f"  TIINGO_BASE_URL={sim.base_url} TIINGO_API_TOKEN={sim.token} stockpipe run --tickers AAPL\n"
            "Ctrl-C stops it.",
            file=sys.stderr,
            flush=True,
        )
        try:
            while not done.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return 0
