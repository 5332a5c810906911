"""tiingo-backfill-orchestrator: Lambda entry point. Thin: validate the event and call the library.

Events: ``{}`` / ``{"tickers": [...]}`` (a backfill run; the hourly schedule sends ``{}``),
``{"action": "status"}`` (paged: optional ``tickers``, ``state``, ``limit``, ``page``; see
``stockpipe.backfill.status``), ``{"action": "retry", "tickers": [...]}`` and
``{"action": "reset", "tickers": [...]}``; answers typed in ``stockpipe.backfill.answers``.
Environment: DATA_BUCKET, SCRAPER_FUNCTION_NAME, TIINGO_SECRET_ARN (or TIINGO_API_TOKEN), TIINGO_BASE_URL,
LOG_LEVEL, and the tunables of ``stockpipe.backfill.settings.BackfillSettings`` (``ENV_NAMES``: the
BACKFILL_* variables and TIINGO_REQUESTS_PER_HOUR). A start date after today is refused at cold start.
Errors: a malformed event or a universe over 25,000 tickers raises ValueError; an index object (or the
progress.json of earlier versions, before its migration) that cannot be read raises StoreError naming
the object and the field (nothing is written); a ticker's own unreadable object is reported for that
ticker only.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from stockpipe.backfill.events import parse_event
from stockpipe.backfill.orchestrator import Orchestrator
from stockpipe.backfill.runtime import orchestrator_from_env


@cache
def runtime() -> Orchestrator:
    """Clients and store, created once per cold start (lazily: a bad event never needs them)."""
    return orchestrator_from_env(os.environ)


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """Malformed events raise ValueError before anything is read or written."""
    parsed = parse_event(event)
    remaining = getattr(context, "get_remaining_time_in_millis", None) if context is not None else None
    return runtime().handle(parsed, remaining_ms=remaining)
