"""Each function's environment, per stack and with every optional setting changed, against a committed
snapshot: the env builders read the handlers' settings classes (``stockpipe.settings``), and a refactor
of them must leave every variable name and value byte-identical (a changed environment is a function
update on the next `pulumi up`). Regenerate deliberately with

    UPDATE_ENV_SNAPSHOT=1 .venv/bin/python -m pytest tests/infra/test_function_environments.py

and review the diff of ``tests/infra/snapshots/environments.json``.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import run_program, stack_config, stack_files, stack_name

SNAPSHOT = Path(__file__).parent / "snapshots" / "environments.json"
FUNCTIONS = ("tiingo-price-scraper", "tiingo-backfill-orchestrator")
# Every setting that reaches an environment, changed from its default.
CHANGED = {
    "tiingoBaseUrl": "http://127.0.0.1:8999/",
    "tiingoRequestsPerHour": 10000,
    "tiingoTokenMaxAgeMinutes": 5,
    "lookbackDays": 10,
    "scraperConcurrency": 16,
    "backfillStartDate": "2010-01-04",
    "backfillChunkMonths": 12,
    "backfillRequestBudget": 400,
    "backfillConcurrency": 4,
    "backfillMaxAttempts": 3,
    "logLevel": "DEBUG",
}


def environments(config: dict[str, Any], stack: str) -> dict[str, dict[str, str]]:
    run = run_program(config, stack=stack)
    return {
        name: run.one("aws:lambda/function:Function", f"{name}-function").plain["environment"]["variables"]
        for name in FUNCTIONS
    }


@functools.cache
def cases() -> dict[str, dict[str, dict[str, str]]]:
    out = {}
    for path in stack_files():
        config = stack_config(path)
        out[stack_name(path)] = environments(config, stack_name(path))
        changed = {**config, **{f"stock-pipeline:{key}": value for key, value in CHANGED.items()}}
        out[f"{stack_name(path)}+changed"] = environments(changed, stack_name(path))
    return out


def test_function_environments_match_the_committed_snapshot():
    found = cases()
    if os.environ.get("UPDATE_ENV_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    assert SNAPSHOT.is_file(), "no snapshot: run once with UPDATE_ENV_SNAPSHOT=1"
    assert found == json.loads(SNAPSHOT.read_text())


@pytest.mark.parametrize("stack", ["dev", "dev+changed"])
def test_every_variable_is_read_back_by_the_handlers_settings(stack):
    """What the components write, the handlers read as the same settings (to_env / from_env agree)."""
    from stockpipe.settings import LogSettings, ScraperSettings, StoreSettings, TiingoSettings, TokenSettings

    scraper = cases()[stack]["tiingo-price-scraper"]
    for cls in (LogSettings, ScraperSettings, StoreSettings, TiingoSettings, TokenSettings):
        settings = cls.from_env(scraper)
        assert cls.from_env(settings.to_env()) == settings
        assert set(settings.to_env()) <= set(scraper)
