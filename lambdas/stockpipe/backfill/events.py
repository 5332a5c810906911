"""Validation of the orchestrator's events (a public contract): bad input fails before anything changes.

Accepted shapes, exactly: ``{}`` or ``{"tickers": [...]}`` (a backfill run; the scheduler sends
``{}``), ``{"action": "status"}``, ``{"action": "retry", "tickers": [...]}`` and
``{"action": "reset", "tickers": [...]}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from stockpipe.eventbridge import is_scheduled_envelope
from stockpipe.tickers import normalize_tickers

ACTIONS = ("status", "retry", "reset")


@dataclass(frozen=True)
class RunEvent:
    tickers: tuple[str, ...] | None = None  # None: the stored universe


@dataclass(frozen=True)
class ActionEvent:
    action: Literal["status", "retry", "reset"]
    tickers: tuple[str, ...] = ()


Event = RunEvent | ActionEvent


def parse_event(event: Any) -> Event:
    """The typed event, or ValueError naming the unknown key / action / bad value."""
    if event is None:
        event = {}
    if not isinstance(event, dict):
        raise ValueError(f"event must be a JSON object, got {type(event).__name__}")
    if is_scheduled_envelope(event):
        return RunEvent()
    if "action" not in event:
        _reject_unknown(event, {"tickers"}, "a backfill run")
        if "tickers" not in event:
            return RunEvent()
        return RunEvent(_tickers(event["tickers"]))
    action = event["action"]
    if not isinstance(action, str) or action not in ACTIONS:
        raise ValueError(f"unknown action {str(action)[:40]!r}: expected one of {', '.join(ACTIONS)}")
    if action == "status":
        _reject_unknown(event, {"action"}, "action 'status'")
        return ActionEvent("status")
    _reject_unknown(event, {"action", "tickers"}, f"action {action!r}")
    if "tickers" not in event:
        raise ValueError(f"action {action!r} needs 'tickers': a non-empty list of ticker symbols")
    return ActionEvent(action, _tickers(event["tickers"]))


def _reject_unknown(event: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(str(key)[:40] for key in event if key not in allowed)
    if unknown:
        keys = ", ".join(repr(key) for key in unknown)
        raise ValueError(f"unknown key(s) {keys} for {what}; allowed: {', '.join(sorted(allowed))}")


def _tickers(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise ValueError("'tickers' must be a non-empty list of ticker symbols")
    return tuple(normalize_tickers(raw))
