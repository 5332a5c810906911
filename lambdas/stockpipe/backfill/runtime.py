"""Building an Orchestrator from environment variables (the Lambda's configuration contract).

DATA_BUCKET (or DATA_DIR), SCRAPER_FUNCTION_NAME, TIINGO_SECRET_ARN (or TIINGO_API_TOKEN), TIINGO_BASE_URL
and the BACKFILL_* tunables of BackfillSettings. The token is resolved on the first metadata lookup
only, so status/retry/reset work even while the secret is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from stockpipe.backfill.invoker import Invoker, LambdaInvoker
from stockpipe.backfill.orchestrator import Orchestrator, utc_now
from stockpipe.backfill.settings import BackfillSettings
from stockpipe.backfill.steps import Listener, MetadataSource, TiingoMetadataSource
from stockpipe.objectstore import open_store
from stockpipe.settings import data_location


def tiingo_metadata_source(env: Mapping[str, str], *, secrets_client: Any = None) -> TiingoMetadataSource:
    """Metadata via TiingoClient; token and client are created on first use and then reused."""

    def build() -> Any:
        from stockpipe.tiingo import client_from_env  # httpx + pyarrow: only when metadata is needed

        return client_from_env(env, secrets_client=secrets_client)

    return TiingoMetadataSource(build)


def orchestrator_from_env(
    env: Mapping[str, str],
    *,
    s3_client: Any = None,
    lambda_client: Any = None,
    secrets_client: Any = None,
    invoker: Invoker | None = None,
    metadata: MetadataSource | None = None,
    clock: Callable[[], datetime] = utc_now,
    today: Callable[[], date] | None = None,
    listener: Listener | None = None,
) -> Orchestrator:
    """ValueError naming the variable for missing or malformed configuration (or a start date after today)."""
    settings = BackfillSettings.from_env(env, today=(today or (lambda: clock().date()))())
    store = open_store(data_location(env), s3_client)
    if invoker is None:
        invoker = LambdaInvoker(env.get("SCRAPER_FUNCTION_NAME", "").strip(), lambda_client)
    if metadata is None:
        metadata = tiingo_metadata_source(env, secrets_client=secrets_client)
    return Orchestrator(
        store,
        invoker,
        metadata,
        settings,
        clock=clock,
        today=today,
        listener=listener,
        function_name=env.get("AWS_LAMBDA_FUNCTION_NAME") or "local",
    )
