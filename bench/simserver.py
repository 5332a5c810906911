"""The Tiingo simulator as a child process (its own GIL), driven by JSON lines on stdin.

``python -m bench.simserver '{"today": "2024-06-14", "latency": 0.05, ...}'`` prints
``{"base_url": ...}`` then answers each command line with ``{"result": ...}``.

Options: ``today``, ``latency``, ``quota``, ``quota_window``, ``error_rate``, ``token`` and
``first_dates`` (``{"OLD0": "1990-01-02", ...}``: extra tickers with a known first trading date, on top of
the simulator's defaults; the generated ``SIM<n>`` tickers all start in 2000). Commands: ``count``,
``records``, ``reset_stats``, ``set``, ``inject``, ``add_event`` (a split or dividend, as
``TiingoSimulator.add_event``) and ``quit``.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import date
from typing import Any

from stockpipe_local.simulator import DEFAULT_TICKERS, Faults, TiingoSimulator


def _records(sim: TiingoSimulator, since: int = 0) -> list[list[Any]]:
    """Compact request records: [kind, ticker, startDate, endDate, status, wall-clock arrival time].

    Arrival times are converted from time.monotonic() to time.time(), the clock the quota windows use.
    """
    records = sim.records(since)
    offset = time.time() - time.monotonic()
    return [
        [r.kind, r.ticker, r.params.get("startDate"), r.params.get("endDate"), r.status, r.time + offset]
        for r in records
    ]


def main() -> int:
    options = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    first_dates = {t: date.fromisoformat(d) for t, d in options.get("first_dates", {}).items()}
    sim = TiingoSimulator(
        token=options.get("token", "sim-token"),
        tickers={**DEFAULT_TICKERS, **first_dates},
        today=date.fromisoformat(options["today"]) if options.get("today") else None,
        quota=options.get("quota"),
        quota_window=options.get("quota_window", 3600.0),
        faults=Faults(latency=options.get("latency", 0.0), error_rate=options.get("error_rate", 0.0)),
    )
    with sim:
        print(json.dumps({"base_url": sim.base_url}), flush=True)
        for line in sys.stdin:
            message = json.loads(line)
            command = message.pop("command")
            result: Any = None
            if command == "quit":
                print(json.dumps({"result": None}), flush=True)
                break
            if command == "count":
                result = sim.count(**message)
            elif command == "records":
                result = _records(sim, message.get("since", 0))
            elif command == "reset_stats":
                sim.reset_stats()
            elif command == "set":
                if "today" in message:
                    sim.today = date.fromisoformat(message["today"])
                if "latency" in message:
                    sim.faults.latency = float(message["latency"])
                if "quota" in message:
                    sim.quota = message["quota"]
            elif command == "inject":
                sim.inject(**message)
            elif command == "add_event":
                day = date.fromisoformat(message.pop("day"))
                sim.add_event(message.pop("ticker"), day, **message)
            print(json.dumps({"result": result}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
