"""tiingo-price-scraper: Lambda entry point. Thin: validate the event and call the shared library.

Event: ``{"tickers": [...], "start_date": "YYYY-MM-DD", "end_date": "YYYY-MM-DD"}``, every key optional
(no dates: daily catch-up; no tickers: ``config/universe.json``). Environment: the settings classes of
``stockpipe.settings`` (StoreSettings, TokenSettings, TiingoSettings, ScraperSettings, LogSettings: each
field names its variable and default) and ``stockpipe.partitions.CatalogTarget`` (the Glue table).
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from stockpipe import scraper


@cache
def runtime() -> scraper.ScraperRuntime:
    """Clients, token and store, created once per cold start and reused by warm invocations."""
    return scraper.runtime_from_env(os.environ)


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    return scraper.handle(event, runtime())
