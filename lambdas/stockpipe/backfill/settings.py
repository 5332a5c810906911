"""BackfillSettings: the orchestrator's tunables and the environment variables that set them (one place).

``from_env`` is what the Lambda reads (errors name the variable); ``to_env`` writes the same names, so
whoever builds the function's environment cannot drift from what the handler reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

from stockpipe.settings import DEFAULT_MAX_RETRIES, env_date, env_int

# Field -> environment variable. TIINGO_REQUESTS_PER_HOUR is shared with the Tiingo client's limiter.
ENV_NAMES: dict[str, str] = {
    "start_date": "BACKFILL_START_DATE",
    "chunk_months": "BACKFILL_CHUNK_MONTHS",
    "request_budget": "BACKFILL_REQUEST_BUDGET",
    "concurrency": "BACKFILL_CONCURRENCY",
    "max_attempts": "BACKFILL_MAX_ATTEMPTS",
    "requests_per_step": "BACKFILL_REQUESTS_PER_STEP",
    "lease_seconds": "BACKFILL_LEASE_SECONDS",
    "stop_margin_seconds": "BACKFILL_STOP_MARGIN_SECONDS",
    "requests_per_hour": "TIINGO_REQUESTS_PER_HOUR",
    "max_chunks_per_request": "BACKFILL_MAX_CHUNKS_PER_REQUEST",
}
# The largest universe the orchestrator accepts (stored or in an event): the index, the per-step I/O
# and every answer's size are sized for it (README: "Backfill at scale").
MAX_TICKERS = 25_000
# Smallest accepted value per integer field (the rest accept 0).
_MINIMUM = {"concurrency": 1, "max_attempts": 1, "requests_per_step": 1, "lease_seconds": 1}


@dataclass(frozen=True)
class BackfillSettings:
    start_date: date = date(2000, 1, 1)
    chunk_months: int = 6
    request_budget: int = 40
    concurrency: int = 2
    max_attempts: int = 5
    # Requests one step is assumed to cost at worst before it starts (the scraper reports the real count
    # afterwards): one request plus the client's retries, so the budget holds even under faults.
    requests_per_step: int = 1 + DEFAULT_MAX_RETRIES
    lease_seconds: int = 960  # longer than the longest possible synchronous invoke (15 min)
    stop_margin_seconds: int = 60  # launch nothing once the Lambda has less time than this left
    # The plan's hourly quota: a run never budgets more than one hour's worth (0: no quota).
    requests_per_hour: int = 50
    # Consecutive pending chunks one scraper request may cover (0: the whole remaining range). Chunks
    # stay the unit of planning, progress and retry; a failed request of several is split (``outcomes``).
    max_chunks_per_request: int = 0

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
        defaults = cls()
        values: dict[str, object] = {
            "start_date": env_date(env, ENV_NAMES["start_date"], defaults.start_date),
        }
        for name, variable in ENV_NAMES.items():
            if name != "start_date":
                values[name] = env_int(env, variable, getattr(defaults, name), minimum=_MINIMUM.get(name, 0))
        settings = cls(**values)  # type: ignore[arg-type]
        settings.check_start_date(today or datetime.now(UTC).date())
        return settings

    def to_env(self, fields: Iterable[str] | None = None) -> dict[str, str]:
        """The environment variables that make ``from_env`` return these settings.

        ``fields`` (names of this class's fields, in the order wanted): only those variables; the
        others then take their defaults in ``from_env``. KeyError for a name that is not a field.
        """
        names = list(ENV_NAMES) if fields is None else list(fields)
        return {ENV_NAMES[name]: str(getattr(self, name)) for name in names}  # dates: ISO
