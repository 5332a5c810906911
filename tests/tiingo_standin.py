"""A Tiingo stand-in on loopback HTTP whose every answer the test chooses: hostile replies the simulator
has no fault for (NaN rows, echoed tokens, odd error pages), scripted sequences, token checks.

``answer(request) -> (status, headers, body)`` decides each reply; ``requests`` records what arrived
(path, query, the Authorization header). Used as a context manager; the server (tests/loopback.py) runs
in a daemon thread.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from tests.loopback import LoopbackServer, Reply, json_reply
from tests.loopback import Request as Arrived

__all__ = ["DROP", "Arrived", "Replies", "Reply", "TiingoStandIn", "bar", "json_reply", "weekdays"]


class TiingoStandIn(LoopbackServer):
    @classmethod
    def scripted(cls, script: list[Reply]) -> TiingoStandIn:
        """Answers in order, one entry per request (an IndexError in the server past the end)."""
        queue = list(script)
        return cls(lambda _arrived: queue.pop(0))


# ---------------------------------------------------------------- replies the tests build on


DROP = object()  # as a ``bar`` change: remove the field


def bar(day: date | str, close: float = 100.0, **changes: Any) -> dict[str, Any]:
    """A plausible Tiingo price row for ``day``; ``changes`` replace fields (``DROP`` removes one)."""
    out = {
        "date": day if isinstance(day, str) else f"{day.isoformat()}T00:00:00.000Z",
        "open": close - 1,
        "high": close + 1,
        "low": close - 2,
        "close": close,
        "volume": 1000,
        "adjOpen": close - 1,
        "adjHigh": close + 1,
        "adjLow": close - 2,
        "adjClose": close,
        "adjVolume": 1000.0,
        "divCash": 0.0,
        "splitFactor": 1.0,
    }
    out.update(changes)
    return {k: v for k, v in out.items() if v is not DROP}


def weekdays(start: date, end: date) -> list[date]:
    return [
        start + timedelta(n) for n in range((end - start).days + 1) if (start + timedelta(n)).weekday() < 5
    ]


class Replies:
    """An ``answer`` per ticker (``/tiingo/daily/<T>/prices``), whatever the dates asked; 404 otherwise."""

    def __init__(self) -> None:
        self.by_ticker: dict[str, Reply] = {}

    def __call__(self, arrived: Arrived) -> Reply:
        ticker = arrived.path.split("/")[3]
        return self.by_ticker.get(ticker, json_reply({"detail": f"Error: Ticker '{ticker}' not found"}, 404))
