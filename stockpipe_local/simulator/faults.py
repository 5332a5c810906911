"""What the simulator can do wrong on purpose: Tiingo's error texts, injectable faults, the quota.

Faults are either injected for the next N matching requests (``FaultPlan.inject``) or background
(``Faults``: latency and a random 500 rate, changeable while the server runs). ``fault_response`` turns
a fault into the exact answer Tiingo gives for it (see ../shared/reference/tiingo-api.md).
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

HOURLY_LIMIT_DETAIL = (
    "Error: You have run over your hourly request allocation. Please upgrade at "
    "https://api.tiingo.com/pricing to have your limits increased."
)
MONTHLY_SYMBOL_TEXT = (
    "You have run over your 500 symbol look up for this month. Please upgrade at "
    "https://api.tiingo.com/pricing to have your limits increased."
)
BANDWIDTH_TEXT = (
    "Error: You have run over your monthly bandwidth allocation. Please upgrade at "
    "https://api.tiingo.com/pricing to have your limits increased."
)
_HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>Tiingo - Error</title></head>"
    "<body><h1>Something went wrong</h1><p>Please try again later.</p></body></html>"
)

FAULTS = frozenset(
    {
        "429",
        "monthly_limit",
        "bandwidth",
        "500",
        "502",
        "503",
        "truncated",
        "html",
        "not_json_shape",
        "empty",
        "timeout",
        "reset",
        "401",
        "403",
        "float_volume",
    }
)


@dataclass
class Faults:
    """Background faults; mutable while the server runs (benchmarks turn latency up and down)."""

    latency: float = 0.0  # seconds added to every response
    error_rate: float = 0.0  # probability of an HTTP 500 per request (seeded RNG -> deterministic)


@dataclass
class Injection:
    fault: str
    remaining: int
    ticker: str | None
    retry_after: float | None


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    action: str | None = None  # "reset" or "slow"


def json_response(status: int, payload: Any) -> Response:
    return Response(status, json.dumps(payload, separators=(",", ":")).encode())


def fault_response(fault: str, symbol: str, retry_after: float | None) -> Response:
    if fault == "429":
        headers = (("Retry-After", f"{retry_after:g}"),) if retry_after is not None else ()
        return Response(429, json_response(429, {"detail": HOURLY_LIMIT_DETAIL}).body, headers=headers)
    if fault == "monthly_limit":
        return Response(200, MONTHLY_SYMBOL_TEXT.encode(), "text/plain")
    if fault == "bandwidth":
        return Response(200, BANDWIDTH_TEXT.encode(), "text/plain")
    if fault == "500":
        return Response(500, b"<h1>Server Error (500)</h1>", "text/html")
    if fault in {"502", "503"}:
        reason = "Bad Gateway" if fault == "502" else "Service Temporarily Unavailable"
        page = (
            f"<html><head><title>{fault} {reason}</title></head><body><h1>{fault} {reason}</h1></body></html>"
        )
        return Response(int(fault), page.encode(), "text/html")
    if fault == "html":
        return Response(200, _HTML_PAGE.encode(), "text/html")
    if fault == "not_json_shape":
        return json_response(200, {"ticker": symbol.lower(), "error": "unexpected response shape"})
    if fault == "empty":
        return json_response(200, [])
    if fault == "401":
        return json_response(401, {"detail": "Invalid token."})
    if fault == "403":
        return json_response(403, {"detail": "Please supply a token"})
    raise AssertionError(f"unhandled fault {fault}")  # pragma: no cover - FAULTS and this stay in sync


class FaultPlan:
    """Injected faults, the seeded random 500s and the clock-aligned hourly quota (thread-safe)."""

    def __init__(self, *, faults: Faults, quota: int | None, quota_window: float, seed: int) -> None:
        if quota is not None and quota < 0:
            raise ValueError("quota must be >= 0 or None")
        if quota_window <= 0:
            raise ValueError("quota_window must be positive seconds")
        self.faults = faults
        self.quota = quota
        self.quota_window = quota_window
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._injections: list[Injection] = []
        self._quota_slot: tuple[int, int] = (-1, 0)  # (window index, requests counted in it)

    def inject(self, fault: str, count: int, ticker: str | None, retry_after: float | None) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose from {sorted(FAULTS)}")
        if count < 1:
            raise ValueError("count must be >= 1")
        wanted = ticker.strip().upper() if ticker is not None else None
        with self._lock:
            self._injections.append(Injection(fault, count, wanted, retry_after))

    def take(self, symbol: str | None) -> Injection | None:
        """The first injection matching ``symbol`` (its count goes down by one), or None."""
        with self._lock:
            for injection in self._injections:
                if injection.ticker is None or injection.ticker == symbol:
                    injection.remaining -= 1
                    if injection.remaining <= 0:
                        self._injections.remove(injection)
                    return injection
        return None

    def over_quota(self) -> bool:
        """Count one request in the current window; True when it is over the quota."""
        if self.quota is None:
            return False
        window = math.floor(time.time() / self.quota_window)
        with self._lock:
            index, used = self._quota_slot
            used = used + 1 if index == window else 1
            self._quota_slot = (window, used)
        return used > self.quota

    def error_roll(self) -> bool:
        """True for a background 500 (seeded: the same sequence for the same seed)."""
        rate = self.faults.error_rate
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate
