"""Stack settings: one pure validator over a plain dict, so every problem is reported before any resource.

Pulumi hands config values over as strings (objects as JSON), so the validator accepts both the typed
value and its string form. ``read_stack_config`` is the only function here that touches Pulumi.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlsplit

import pulumi

from stockpipe.tickers import normalize_ticker

PROJECT = "stock-pipeline"
TOKEN_KEY = "tiingoApiToken"  # noqa: S105 - the config key name, not a value
SECRET_COMMAND = f"pulumi config set --secret {TOKEN_KEY} <your-token>"

# Every optional setting and its default. Pulumi.yaml declares the same defaults (a test keeps them equal).
DEFAULTS: dict[str, Any] = {
    "bucketName": "",
    "tiingoBaseUrl": "",
    "tiingoRequestsPerHour": 50,
    "tiingoTokenMaxAgeMinutes": 15,
    "scraperSchedule": "cron(30 20 ? * MON-FRI *)",
    "orchestratorSchedule": "rate(1 hour)",
    "scheduleTimezone": "America/New_York",
    "lookbackDays": 7,
    "scraperConcurrency": 8,
    "scraperReservedConcurrency": -1,
    "scraperMemoryMb": 1024,
    "scraperTimeoutSeconds": 900,
    "orchestratorMemoryMb": 512,
    "orchestratorTimeoutSeconds": 900,
    "backfillStartDate": "2000-01-01",
    "backfillChunkMonths": 6,
    "backfillRequestBudget": 40,
    "backfillConcurrency": 2,
    "backfillMaxAttempts": 5,
    "logRetentionDays": 30,
    "logLevel": "INFO",
    "alarmEmail": "",
    "buildOnPreview": False,
    "imageKeepCount": 10,
}
REQUIRED = ("tickers", TOKEN_KEY)
KNOWN_KEYS = frozenset(DEFAULTS) | frozenset(REQUIRED)

# (minimum, maximum) for every integer setting; None = unbounded.
INT_RANGES: dict[str, tuple[int, int | None]] = {
    "tiingoRequestsPerHour": (1, None),
    "tiingoTokenMaxAgeMinutes": (1, 1440),
    "lookbackDays": (1, 366),
    "scraperConcurrency": (1, 64),
    "scraperReservedConcurrency": (-1, 1000),
    "scraperMemoryMb": (128, 10240),
    "scraperTimeoutSeconds": (1, 900),
    "orchestratorMemoryMb": (128, 10240),
    "orchestratorTimeoutSeconds": (1, 900),
    "backfillChunkMonths": (0, 1200),
    "backfillRequestBudget": (1, None),
    "backfillConcurrency": (1, 64),
    "backfillMaxAttempts": (1, 100),
    "logRetentionDays": (1, None),
    "imageKeepCount": (1, 1000),
}
# The only values CloudWatch Logs accepts (0 = never expire is refused on purpose: retention is a control).
LOG_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# Lambda's rule (Lambda Developer Guide, "Configuring reserved concurrency"): reservations may take the
# account's unreserved concurrency down to at least 100, i.e. a function may reserve up to
# (unreserved - 100). A new account starts with a concurrency limit of 10, so it cannot reserve any at
# all: PutFunctionConcurrency fails. Hence the default -1 (no reservation); the orchestrator bounds its
# own fan-out (backfillConcurrency), and accounts with headroom may still opt in.
MIN_UNRESERVED_CONCURRENCY = 100
NEW_ACCOUNT_CONCURRENCY_LIMIT = 10


def reservable_concurrency(unreserved_account_concurrency: int) -> int:
    """The most one function may reserve in an account with that much unreserved concurrency."""
    return max(0, unreserved_account_concurrency - MIN_UNRESERVED_CONCURRENCY)


def base_url_problem(url: str) -> str | None:
    """``https://`` always; ``http://`` only for a loopback host (the local simulator): the token rides
    along in every request, so it must never cross a network in clear text."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"\s", url):
        return f"tiingoBaseUrl must be an https:// URL, got {url!r}"
    if parts.scheme == "https" or parts.hostname == "localhost":
        return None
    try:
        if ipaddress.ip_address(parts.hostname).is_loopback:
            return None
    except ValueError:
        pass
    return f"tiingoBaseUrl must use https:// (http:// only for a loopback simulator), got {url!r}"


_CRON = re.compile(r"cron\((.+)\)")
_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_CRON_FIELD = re.compile(r"[0-9A-Za-z*?,/#L\-]+")
_BUCKET = re.compile(r"(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class ConfigError(pulumi.RunError):
    """All config problems at once; a RunError so `pulumi up` prints the message without a traceback."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"invalid stack configuration ({len(problems)} problem(s)):\n{lines}")


@dataclass(frozen=True)
class StackSettings:
    """Validated, typed settings. Holds no secret: the token travels separately as a secret Output."""

    tickers: tuple[str, ...]
    bucket_name: str | None
    tiingo_base_url: str | None
    tiingo_requests_per_hour: int
    tiingo_token_max_age_minutes: int
    scraper_schedule: str
    orchestrator_schedule: str
    schedule_timezone: str
    lookback_days: int
    scraper_concurrency: int
    scraper_reserved_concurrency: int
    scraper_memory_mb: int
    scraper_timeout_seconds: int
    orchestrator_memory_mb: int
    orchestrator_timeout_seconds: int
    backfill_start_date: date
    backfill_chunk_months: int
    backfill_request_budget: int
    backfill_concurrency: int
    backfill_max_attempts: int
    log_retention_days: int
    log_level: str
    alarm_email: str | None
    build_on_preview: bool
    image_keep_count: int


def validate_schedule(expression: str) -> str | None:
    """The problem with an EventBridge Scheduler cron()/rate() expression, or None when it is valid."""
    rate = _RATE.fullmatch(expression)
    if rate:
        value, unit = int(rate.group(1)), rate.group(2)
        if value < 1:
            return f"{expression!r}: the rate value must be >= 1"
        if (value == 1) == unit.endswith("s"):
            return (
                f"{expression!r}: use a singular unit for 1, plural otherwise (rate(1 hour), rate(2 hours))"
            )
        return None
    cron = _CRON.fullmatch(expression)
    if cron:
        fields = cron.group(1).split()
        if len(fields) != 6:
            return (
                f"{expression!r}: cron() needs 6 fields (minutes hours day-of-month month day-of-week year),"
                f" got {len(fields)}"
            )
        if not all(_CRON_FIELD.fullmatch(field) for field in fields):
            return f"{expression!r}: a cron field contains characters EventBridge does not accept"
        day_of_month, day_of_week = fields[2], fields[4]
        if (day_of_month == "?") == (day_of_week == "?"):
            return f"{expression!r}: exactly one of day-of-month and day-of-week must be '?'"
        return None
    return f"{expression!r} is not a schedule: use cron(...) with 6 fields or rate(<n> <unit>)"


def _as_int(key: str, value: Any, problems: list[str]) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        problems.append(f"{key} must be an integer, got {value!r}")
        return 0
    try:
        number = int(value)
    except ValueError:
        problems.append(f"{key} must be an integer, got {value!r}")
        return 0
    low, high = INT_RANGES[key]
    if number < low or (high is not None and number > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        problems.append(f"{key} must be {bound}, got {number}")
    return number


def _as_bool(key: str, value: Any, problems: list[str]) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    problems.append(f"{key} must be true or false, got {value!r}")
    return False


def _as_str(key: str, value: Any, problems: list[str]) -> str:
    if not isinstance(value, str):
        problems.append(f"{key} must be a string, got {value!r}")
        return ""
    return value.strip()


def _tickers(value: Any, problems: list[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            problems.append("tickers must be a list, e.g. `pulumi config set --path 'tickers[0]' AAPL`")
            return ()
    if value is None:
        problems.append("tickers is required: `pulumi config set --path 'tickers[0]' AAPL` (one entry each)")
        return ()
    if not isinstance(value, list):
        problems.append(f"tickers must be a list of symbols, got {type(value).__name__}")
        return ()
    if not value:
        problems.append("tickers is empty: list at least one symbol (e.g. AAPL)")
        return ()
    tickers: list[str] = []
    for item in value:
        try:
            tickers.append(normalize_ticker(item))
        except ValueError as exc:
            problems.append(f"tickers: {exc}")
    return tuple(dict.fromkeys(tickers))


def validate_config(raw: Mapping[str, Any], *, token_is_secret: bool = True) -> StackSettings:
    """Typed settings from the stack's raw config (keys without the project prefix).

    ``raw[TOKEN_KEY]`` only has to be present and non-empty: its value is never kept. Raises ConfigError
    listing every problem (unknown keys included, with a suggestion), so one `pulumi up` shows them all.
    """
    problems: list[str] = []
    for key in sorted(set(raw) - KNOWN_KEYS):
        close = difflib.get_close_matches(key, sorted(KNOWN_KEYS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"unknown setting {PROJECT}:{key}{hint}")

    token = raw.get(TOKEN_KEY)
    if token is None or (isinstance(token, str) and not token.strip()):
        problems.append(f"the Tiingo API token is missing: run `{SECRET_COMMAND}`")
    elif not token_is_secret:
        problems.append(f"{TOKEN_KEY} is stored in plaintext: re-set it encrypted with `{SECRET_COMMAND}`")

    tickers = _tickers(raw.get("tickers"), problems)
    value = {key: raw.get(key, default) for key, default in DEFAULTS.items()}
    ints = {key: _as_int(key, value[key], problems) for key in INT_RANGES}
    strs = {
        key: _as_str(key, value[key], problems)
        for key, default in DEFAULTS.items()
        if isinstance(default, str)
    }

    for key in ("scraperSchedule", "orchestratorSchedule"):
        problem = validate_schedule(strs[key]) if strs[key] else f"{strs[key]!r} is empty"
        if problem:
            problems.append(f"{key}: {problem}")
    try:
        zoneinfo.ZoneInfo(strs["scheduleTimezone"])
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(f"scheduleTimezone: unknown IANA time zone {strs['scheduleTimezone']!r}")

    start = date(2000, 1, 1)
    try:
        start = date.fromisoformat(strs["backfillStartDate"])
    except ValueError:
        problems.append(f"backfillStartDate must be a date YYYY-MM-DD, got {strs['backfillStartDate']!r}")
    if start > date.today():
        problems.append(f"backfillStartDate {start} is in the future")

    if ints["logRetentionDays"] not in LOG_RETENTION_DAYS:
        allowed = ", ".join(str(days) for days in sorted(LOG_RETENTION_DAYS))
        problems.append(f"logRetentionDays must be one of {allowed}; got {ints['logRetentionDays']}")
    if ints["scraperReservedConcurrency"] == 0:
        problems.append("scraperReservedConcurrency 0 would disable the scraper; use -1 for no reservation")
    reserved, fan_out = ints["scraperReservedConcurrency"], ints["backfillConcurrency"]
    if 0 < reserved < fan_out:
        problems.append(
            f"scraperReservedConcurrency ({reserved}) is below backfillConcurrency ({fan_out}):"
            " the orchestrator's synchronous scraper calls would be throttled"
        )
    if ints["backfillRequestBudget"] >= ints["tiingoRequestsPerHour"] > 0:
        problems.append(
            f"backfillRequestBudget ({ints['backfillRequestBudget']}) must be below tiingoRequestsPerHour "
            f"({ints['tiingoRequestsPerHour']}) to leave room for the daily scrape"
        )
    if strs["logLevel"].upper() not in LOG_LEVELS:
        problems.append(f"logLevel must be one of {', '.join(LOG_LEVELS)}, got {strs['logLevel']!r}")
    if strs["bucketName"] and not _BUCKET.fullmatch(strs["bucketName"]):
        problems.append(f"bucketName {strs['bucketName']!r} is not a valid S3 bucket name")
    url_problem = base_url_problem(strs["tiingoBaseUrl"]) if strs["tiingoBaseUrl"] else None
    if url_problem:
        problems.append(url_problem)
    if strs["alarmEmail"] and not _EMAIL.fullmatch(strs["alarmEmail"]):
        problems.append(f"alarmEmail {strs['alarmEmail']!r} is not an e-mail address")
    build_on_preview = _as_bool("buildOnPreview", value["buildOnPreview"], problems)

    if problems:
        raise ConfigError(problems)
    return StackSettings(
        tickers=tickers,
        bucket_name=strs["bucketName"] or None,
        tiingo_base_url=strs["tiingoBaseUrl"].rstrip("/") or None,
        tiingo_requests_per_hour=ints["tiingoRequestsPerHour"],
        tiingo_token_max_age_minutes=ints["tiingoTokenMaxAgeMinutes"],
        scraper_schedule=strs["scraperSchedule"],
        orchestrator_schedule=strs["orchestratorSchedule"],
        schedule_timezone=strs["scheduleTimezone"],
        lookback_days=ints["lookbackDays"],
        scraper_concurrency=ints["scraperConcurrency"],
        scraper_reserved_concurrency=ints["scraperReservedConcurrency"],
        scraper_memory_mb=ints["scraperMemoryMb"],
        scraper_timeout_seconds=ints["scraperTimeoutSeconds"],
        orchestrator_memory_mb=ints["orchestratorMemoryMb"],
        orchestrator_timeout_seconds=ints["orchestratorTimeoutSeconds"],
        backfill_start_date=start,
        backfill_chunk_months=ints["backfillChunkMonths"],
        backfill_request_budget=ints["backfillRequestBudget"],
        backfill_concurrency=ints["backfillConcurrency"],
        backfill_max_attempts=ints["backfillMaxAttempts"],
        log_retention_days=ints["logRetentionDays"],
        log_level=strs["logLevel"].upper(),
        alarm_email=strs["alarmEmail"] or None,
        build_on_preview=build_on_preview,
        image_keep_count=ints["imageKeepCount"],
    )


def read_stack_config() -> tuple[StackSettings, pulumi.Output[str]]:
    """Validated settings plus the token as a secret Output (its value never enters StackSettings)."""
    from pulumi.runtime.config import CONFIG, get_config_env, get_config_secret_keys_env, is_config_secret

    prefix = f"{PROJECT}:"
    present = set(CONFIG.get()) | set(get_config_env())
    raw: dict[str, Any] = {}
    config = pulumi.Config(PROJECT)
    for full_key in sorted(present):
        if full_key.startswith(prefix):
            key = full_key[len(prefix) :]
            value = config.get(key)
            # Only the token's presence is validated: its value never enters the plain dict.
            raw[key] = ("<set>" if value and value.strip() else None) if key == TOKEN_KEY else value
    token = config.get_secret(TOKEN_KEY)
    full_token_key = prefix + TOKEN_KEY
    is_secret = is_config_secret(full_token_key) or full_token_key in get_config_secret_keys_env()
    settings = validate_config(raw, token_is_secret=is_secret)
    assert token is not None  # validate_config rejects a missing token
    return settings, token
