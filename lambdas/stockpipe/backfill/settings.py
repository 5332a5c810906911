"""BackfillSettings: the orchestrator's tunables and the environment variables that set them (one place).

``from_env`` is what the Lambda reads (errors name the variable); ``to_env`` writes the same names, so
whoever builds the function's environment cannot drift from what the handler reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from stockpipe.settings import DEFAULT_MAX_RETRIES, EnvSettings, env_var

# The largest universe the orchestrator accepts (stored or in an event): the index, the per-step I/O
# and every answer's size are sized for it (README: "Backfill at scale").
MAX_TICKERS = 25_000


@dataclass(frozen=True)
class BackfillSettings(EnvSettings):
    start_date: date = field(default=date(2000, 1, 1), metadata=env_var("BACKFILL_START_DATE"))
    chunk_months: int = field(default=6, metadata=env_var("BACKFILL_CHUNK_MONTHS"))
    request_budget: int = field(default=40, metadata=env_var("BACKFILL_REQUEST_BUDGET"))
    concurrency: int = field(default=2, metadata=env_var("BACKFILL_CONCURRENCY", minimum=1))
    max_attempts: int = field(default=5, metadata=env_var("BACKFILL_MAX_ATTEMPTS", minimum=1))
    # Requests one step is assumed to cost at worst before it starts (the scraper reports the real count
    # afterwards): one request plus the client's retries, so the budget holds even under faults.
    requests_per_step: int = field(
        default=1 + DEFAULT_MAX_RETRIES, metadata=env_var("BACKFILL_REQUESTS_PER_STEP", minimum=1)
    )
    # Longer than the longest possible synchronous invoke (15 min).
    lease_seconds: int = field(default=960, metadata=env_var("BACKFILL_LEASE_SECONDS", minimum=1))
    # Launch nothing once the Lambda has less time than this left.
    stop_margin_seconds: int = field(default=60, metadata=env_var("BACKFILL_STOP_MARGIN_SECONDS"))
    # The plan's hourly quota: a run never budgets more than one hour's worth (0: no quota). The same
    # variable sets the Tiingo client's limiter (stockpipe.settings.TiingoSettings).
    requests_per_hour: int = field(default=50, metadata=env_var("TIINGO_REQUESTS_PER_HOUR"))
    # Consecutive pending chunks one scraper request may cover (0: the whole remaining range). Chunks
    # stay the unit of planning, progress and retry; a failed request of several is split (``outcomes``).
    max_chunks_per_request: int = field(default=0, metadata=env_var("BACKFILL_MAX_CHUNKS_PER_REQUEST"))

    @property
    def effective_budget(self) -> int:
        if self.requests_per_hour:
            return min(self.request_budget, self.requests_per_hour)
        return self.request_budget

    def check_start_date(self, today: date) -> None:
        """ValueError when the start date is after ``today``: there is no history to backfill there.

        (Planned with such a date, every ticker would be marked done with no rows.)
        """
        if self.start_date > today:
            raise ValueError(
                f"{ENV_NAMES['start_date']} {self.start_date} is after today ({today}): "
                "a backfill starts in the past; use an earlier date"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, today: date | None = None) -> BackfillSettings:
        """The settings from the environment; ValueError naming the variable for a bad value."""
        settings = super().from_env(env)
        settings.check_start_date(today or datetime.now(UTC).date())
        return settings


# Field -> environment variable.
ENV_NAMES: dict[str, str] = BackfillSettings.env_names()
