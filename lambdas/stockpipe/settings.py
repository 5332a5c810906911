"""The handlers' settings and the environment variables that carry them: each defined once, here.

Every settings class names its variables in its fields (``env`` metadata) and has ``from_env`` (what a
handler reads; errors name the variable) and ``to_env`` (what the Pulumi components write into the
function's environment), so the two sides cannot drift. A field marked ``optional`` is written only
when it differs from its default (the handler's default applies otherwise); every other field is
always written. Values in ``to_env`` are strings, except that the components may pass a Pulumi
``Output`` (a bucket name, a secret ARN): it is written as it is.

=============================  =================================================================
variable                       settings
=============================  =================================================================
``DATA_BUCKET``, ``DATA_DIR``  StoreSettings
``TIINGO_*``                   TiingoSettings (the token: TokenSettings; TIINGO_API_TOKEN locally)
``SCRAPER_CONCURRENCY``,       ScraperSettings
``LOOKBACK_DAYS``
``LOG_LEVEL``                  LogSettings
``GLUE_DATABASE/TABLE``        stockpipe.partitions.CatalogTarget
``BACKFILL_*``                 stockpipe.backfill.settings.BackfillSettings
=============================  =================================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from typing import Any, Final, Self

# Retries of one Tiingo request after the first attempt. Here, not in tiingo.py, because the orchestrator
# budgets a step's worst case (1 + retries) without importing httpx/pyarrow on its cold start.
DEFAULT_MAX_RETRIES = 4
DEFAULT_TIINGO_BASE_URL: Final = "https://api.tiingo.com"
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
# The token locally (never set by the Pulumi program: in AWS the token lives in Secrets Manager).
API_TOKEN_ENV: Final = "TIINGO_API_TOKEN"  # noqa: S105 - a variable name, not a value


def env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def env_date(env: Mapping[str, str], name: str, default: date) -> date:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{name} must be a date YYYY-MM-DD, got {raw!r}") from None


def env_var(name: str, *, optional: bool = False, minimum: int = 0) -> dict[str, Any]:
    """A settings field's metadata: its variable, whether it is written only when not the default, and
    the smallest integer accepted."""
    return {"env": name, "optional": optional, "minimum": minimum}


class EnvSettings:
    """``from_env`` / ``to_env`` over the dataclass fields' ``env`` metadata (str, int and date fields)."""

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Field name -> environment variable."""
        return {f.name: f.metadata["env"] for f in fields(cls)}  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        values: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            name = f.metadata["env"]
            if isinstance(f.default, int):
                values[f.name] = env_int(env, name, f.default, minimum=f.metadata["minimum"])
            elif isinstance(f.default, date):
                values[f.name] = env_date(env, name, f.default)
            else:
                values[f.name] = env.get(name, "").strip() or f.default
        return cls(**values)

    def to_env(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        """The variables that make ``from_env`` return these settings.

        ``names`` (field names, in the order wanted): only those variables, each written; the others
        then take their defaults in ``from_env``. KeyError for a name that is not a field.
        """
        by_name = {f.name: f for f in fields(self)}  # type: ignore[arg-type]
        chosen = by_name.values() if names is None else [by_name[name] for name in names]
        out: dict[str, Any] = {}
        for f in chosen:
            value = getattr(self, f.name)
            if names is None and f.metadata["optional"] and value == f.default:
                continue
            # str(date) is ISO; anything else (a Pulumi Output) is written as it is
            out[f.metadata["env"]] = str(value) if isinstance(value, int | str | date) else value
        return out


@dataclass(frozen=True)
class StoreSettings(EnvSettings):
    """Where the data lives: ``s3://$DATA_BUCKET`` in AWS, ``$DATA_DIR`` (same layout) for local runs."""

    bucket: str = field(default="", metadata=env_var("DATA_BUCKET", optional=True))
    directory: str = field(default="", metadata=env_var("DATA_DIR", optional=True))

    def location(self) -> str:
        if self.bucket:
            return f"s3://{self.bucket}"
        if self.directory:
            return self.directory
        raise ValueError("DATA_BUCKET is required (or DATA_DIR for a local run)")


def data_location(env: Mapping[str, str]) -> str:
    """``s3://$DATA_BUCKET`` in AWS; ``$DATA_DIR`` (a local directory, same layout) for local runs."""
    return StoreSettings.from_env(env).location()


@dataclass(frozen=True)
class TiingoSettings(EnvSettings):
    """How both Lambdas reach Tiingo: every ``TIINGO_*`` variable but the token itself."""

    base_url: str = field(default=DEFAULT_TIINGO_BASE_URL, metadata=env_var("TIINGO_BASE_URL", optional=True))
    # Client-side limit of requests per hour, 0 = none. The stack sets the plan's quota
    # (tiingoRequestsPerHour); a local run without it has no limit.
    requests_per_hour: int = field(default=0, metadata=env_var("TIINGO_REQUESTS_PER_HOUR"))
    # Longest wait for that limit before the run stops (the next run goes on).
    max_limit_wait_seconds: int = field(
        default=60, metadata=env_var("TIINGO_MAX_LIMIT_WAIT_SECONDS", optional=True)
    )
    # A rotated secret is read again after this many minutes (stack: tiingoTokenMaxAgeMinutes).
    token_max_age_minutes: int = field(
        default=15, metadata=env_var("TIINGO_TOKEN_MAX_AGE_MINUTES", minimum=1)
    )


@dataclass(frozen=True)
class TokenSettings(EnvSettings):
    """The Secrets Manager secret holding the token (its SecretString is the bare token).

    Locally the token may come as TIINGO_API_TOKEN instead (``secrets.token_source_from_env``); the
    Pulumi program never sets that variable (the policy pack refuses it).
    """

    secret_arn: str = field(default="", metadata=env_var("TIINGO_SECRET_ARN", optional=True))


@dataclass(frozen=True)
class ScraperSettings(EnvSettings):
    """The scraper's own tunables (stack: scraperConcurrency, lookbackDays)."""

    concurrency: int = field(default=8, metadata=env_var("SCRAPER_CONCURRENCY", minimum=1))
    lookback_days: int = field(default=7, metadata=env_var("LOOKBACK_DAYS"))


@dataclass(frozen=True)
class LogSettings(EnvSettings):
    """The handlers' log level (stack: logLevel)."""

    level: str = field(default="INFO", metadata=env_var("LOG_LEVEL"))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        settings = super().from_env(env)
        level = settings.level.upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {settings.level!r}")
        return cls(level=level)
