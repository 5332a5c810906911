"""The stack settings a local run uses, read from ``Pulumi.<stack>.yaml`` and checked by the program's own
validator (``components.config.validate_config``), so `stockpipe run` refuses exactly what `pulumi up`
would refuse, with the same words, plus the file name.

Two differences from `pulumi up`, both because a local run does not deploy: the token is not required in
the file (a local run takes TIINGO_API_TOKEN from the environment), and ``--tickers`` stands in for a
missing ``tickers`` list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

PROJECT_PREFIX = "stock-pipeline:"
DEFAULT_STACK_FILE = Path("Pulumi.dev.yaml")
_TOKEN_KEY = "tiingoApiToken"  # noqa: S105 - a config key name, not a value


class StackConfigError(ValueError):
    """The stack file is missing, not YAML, or refused by the validator (names the file and the keys)."""


@dataclass(frozen=True)
class StackConfig:
    """The few stack settings a local run uses (defaults: components.config.DEFAULTS)."""

    tickers: list[str] = field(default_factory=list)
    start_date: date = date(2000, 1, 1)
    chunk_months: int = 6
    requests_per_hour: int = 50


def load_stack_config(
    path: str | Path, *, required: bool = False, tickers: Sequence[str] | None = None
) -> StackConfig:
    """Validated settings from ``path``; built-in defaults when it is missing and not ``required``."""
    file = Path(path)
    if not file.is_file():
        if required:
            raise StackConfigError(f"{file}: no such stack file (--stack-config)")
        return StackConfig()
    from components.config import ConfigError, validate_config  # imports pulumi: only with a file

    raw, token_is_secret = _raw_config(file)
    if "tickers" not in raw and tickers:
        raw["tickers"] = list(tickers)
    if _TOKEN_KEY not in raw:  # a local run reads TIINGO_API_TOKEN instead
        raw[_TOKEN_KEY] = "<from the environment>"
    try:
        settings = validate_config(raw, token_is_secret=token_is_secret)
    except ConfigError as exc:
        problems = "\n".join(f"  - {problem}" for problem in exc.problems)
        raise StackConfigError(f"{file}: invalid stack configuration:\n{problems}") from None
    return StackConfig(
        tickers=list(settings.tickers),
        start_date=settings.backfill_start_date,
        chunk_months=settings.backfill_chunk_months,
        requests_per_hour=settings.tiingo_requests_per_hour,
    )


def _raw_config(file: Path) -> tuple[dict[str, Any], bool]:
    """``stock-pipeline:*`` keys without the prefix, as Pulumi hands them to the program.

    Pulumi passes scalars as strings (an unquoted YAML date is the string ``2015-01-01``) and a
    ``secure:`` value only as "set"; returns whether the token, when present, is such a secret.
    """
    import yaml

    try:
        data = yaml.safe_load(file.read_text()) or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise StackConfigError(f"{file}: cannot be read ({exc.__class__.__name__})") from None
    except yaml.YAMLError as exc:
        raise StackConfigError(f"{file} is not valid YAML: {str(exc)[:200]}") from None
    config = data.get("config", {}) if isinstance(data, dict) else None
    if not isinstance(config, dict):
        raise StackConfigError(f"{file}: 'config' must be a mapping of settings")
    raw: dict[str, Any] = {}
    token_is_secret = True
    for key, value in config.items():
        if not str(key).startswith(PROJECT_PREFIX):
            continue  # aws:region and other providers' settings
        name = str(key)[len(PROJECT_PREFIX) :]
        if isinstance(value, dict) and "secure" in value:
            raw[name] = "<secret>"
            continue
        if isinstance(value, dict) and "value" in value:
            value = value["value"]
        if name == _TOKEN_KEY:
            token_is_secret = False
        raw[name] = value.isoformat() if isinstance(value, date | datetime) else value
    return raw, token_is_secret
