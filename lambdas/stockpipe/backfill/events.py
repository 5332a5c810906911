"""Validation of the orchestrator's events (a public contract): bad input fails before anything changes.

Accepted shapes, exactly: ``{}`` or ``{"tickers": [...]}`` (a backfill run; the scheduler sends
``{}``), ``{"action": "status"}`` with optional ``"tickers"``, ``"state"``, ``"limit"`` and ``"page"``
(see ``status``), ``{"action": "retry", "tickers": [...]}`` and ``{"action": "reset", "tickers": [...]}``.
A list of tickers holds at most ``settings.MAX_TICKERS`` (a status page at most ``STATUS_MAX_LIMIT``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from stockpipe.backfill.answers import STATUS_LIMIT, STATUS_MAX_LIMIT
from stockpipe.backfill.settings import MAX_TICKERS
from stockpipe.eventbridge import is_scheduled_envelope
from stockpipe.tickers import normalize_tickers

ACTIONS = ("status", "retry", "reset")
STATES = ("done", "in_progress", "parked", "pending")
_STATUS_KEYS = {"action", "tickers", "state", "limit", "page"}
_PAGE = re.compile(r"[0-9a-f]{2}:[A-Z0-9-]{1,20}")


@dataclass(frozen=True)
class RunEvent:
    tickers: tuple[str, ...] | None = None  # None: the stored universe


@dataclass(frozen=True)
class ActionEvent:
    action: Literal["status", "retry", "reset"]
    tickers: tuple[str, ...] = ()
    state: str | None = None  # status: only tickers in this state
    limit: int = STATUS_LIMIT  # status: tickers per page
    page: tuple[str, str] | None = None  # status: continue after (shard, ticker)


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
        return _status(event)
    _reject_unknown(event, {"action", "tickers"}, f"action {action!r}")
    if "tickers" not in event:
        raise ValueError(f"action {action!r} needs 'tickers': a non-empty list of ticker symbols")
    return ActionEvent(action, _tickers(event["tickers"]))


def _status(event: dict[str, Any]) -> ActionEvent:
    _reject_unknown(event, _STATUS_KEYS, "action 'status'")
    tickers = _tickers(event["tickers"], limit=STATUS_MAX_LIMIT) if "tickers" in event else ()
    state = event.get("state")
    if state is not None and state not in STATES:
        raise ValueError(f"unknown state {str(state)[:40]!r}: expected one of {', '.join(STATES)}")
    limit = event.get("limit", STATUS_LIMIT)
    if type(limit) is not int or not 1 <= limit <= STATUS_MAX_LIMIT:
        raise ValueError(f"'limit' must be an integer from 1 to {STATUS_MAX_LIMIT}, got {str(limit)[:40]!r}")
    page = event.get("page")
    if page is not None and not (isinstance(page, str) and _PAGE.fullmatch(page)):
        raise ValueError(f"'page' must be the 'next' of an earlier status answer, got {str(page)[:40]!r}")
    if page is not None and tickers:
        raise ValueError("'page' pages through the index; it cannot be combined with 'tickers'")
    after = tuple(page.split(":", 1)) if page else None
    return ActionEvent("status", tickers, state, limit, after)  # type: ignore[arg-type]


def _reject_unknown(event: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(str(key)[:40] for key in event if key not in allowed)
    if unknown:
        keys = ", ".join(repr(key) for key in unknown)
        raise ValueError(f"unknown key(s) {keys} for {what}; allowed: {', '.join(sorted(allowed))}")


def _tickers(raw: Any, *, limit: int = MAX_TICKERS) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise ValueError("'tickers' must be a non-empty list of ticker symbols")
    if len(raw) > limit:
        raise ValueError(f"'tickers' has {len(raw):,} entries; at most {limit:,} per event")
    return tuple(normalize_tickers(raw))
