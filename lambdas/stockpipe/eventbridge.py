"""EventBridge's scheduled-event envelope, which both handlers treat as the empty event."""

from __future__ import annotations

from typing import Any

_ENVELOPE_KEYS = frozenset(
    {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
)


def is_scheduled_envelope(event: dict[str, Any]) -> bool:
    """A rule or schedule without its own input delivers this envelope instead of ``{}``."""
    return event.get("detail-type") == "Scheduled Event" and set(event) <= _ENVELOPE_KEYS
