"""The handlers' settings classes (stockpipe.settings): one place for each variable and each default.

``to_env``/``from_env`` round-trip, errors name the variable, and where a stack setting (Pulumi.yaml,
components/config.py) and a handler default mean the same thing, they are the same value.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.config import DEFAULTS
from stockpipe.settings import (
    DEFAULT_TIINGO_BASE_URL,
    LogSettings,
    ScraperSettings,
    StoreSettings,
    TiingoSettings,
    TokenSettings,
    data_location,
)

ROOT = Path(__file__).resolve().parent.parent
CLASSES = [LogSettings, ScraperSettings, StoreSettings, TiingoSettings, TokenSettings]
# Stack setting -> (settings class, field): the same knob on both sides, so the same default.
SAME_DEFAULT = {
    "scraperConcurrency": (ScraperSettings, "concurrency"),
    "lookbackDays": (ScraperSettings, "lookback_days"),
    "tiingoTokenMaxAgeMinutes": (TiingoSettings, "token_max_age_minutes"),
    "logLevel": (LogSettings, "level"),
}


def pulumi_yaml_defaults() -> dict[str, object]:
    config = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    return {key: spec["default"] for key, spec in config.items() if "default" in spec}


@pytest.mark.parametrize("key", sorted(SAME_DEFAULT))
def test_stack_defaults_and_handler_defaults_are_one_value(key):
    cls, field = SAME_DEFAULT[key]
    handler_default = getattr(cls(), field)
    assert DEFAULTS[key] == pulumi_yaml_defaults()[key] == handler_default


def test_an_empty_base_url_in_the_stack_means_the_handlers_default():
    assert DEFAULTS["tiingoBaseUrl"] == pulumi_yaml_defaults()["tiingoBaseUrl"] == ""
    assert TiingoSettings.from_env({"TIINGO_BASE_URL": ""}).base_url == DEFAULT_TIINGO_BASE_URL


def test_the_hourly_quota_is_the_stacks_the_handler_alone_has_none():
    """Not the same knob: the stack states the plan's quota (50, the free plan) and always sets it; a
    handler run without the variable (locally) has no client-side limit at all."""
    assert DEFAULTS["tiingoRequestsPerHour"] == 50
    assert TiingoSettings().requests_per_hour == 0
    assert "TIINGO_REQUESTS_PER_HOUR" in TiingoSettings().to_env()  # always written by the components


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_to_env_and_from_env_round_trip(cls):
    default = cls()
    assert cls.from_env(default.to_env()) == default
    assert cls.from_env({}) == default
    assert set(cls.env_names().values()) >= set(default.to_env())


def test_changed_values_round_trip_and_optional_ones_are_written_only_when_set():
    tiingo = TiingoSettings(base_url="http://127.0.0.1:9", requests_per_hour=10, token_max_age_minutes=3)
    env = tiingo.to_env()
    assert env == {
        "TIINGO_BASE_URL": "http://127.0.0.1:9",
        "TIINGO_REQUESTS_PER_HOUR": "10",
        "TIINGO_TOKEN_MAX_AGE_MINUTES": "3",
    }
    assert TiingoSettings.from_env(env) == tiingo
    assert ScraperSettings(concurrency=3, lookback_days=9).to_env() == {
        "SCRAPER_CONCURRENCY": "3",
        "LOOKBACK_DAYS": "9",
    }
    assert StoreSettings().to_env() == {}
    assert StoreSettings(bucket="b").to_env() == {"DATA_BUCKET": "b"}
    assert TokenSettings().to_env() == {}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SCRAPER_CONCURRENCY": "0"}, "SCRAPER_CONCURRENCY must be >= 1, got 0"),
        ({"LOOKBACK_DAYS": "seven"}, "LOOKBACK_DAYS must be an integer, got 'seven'"),
        ({"TIINGO_TOKEN_MAX_AGE_MINUTES": "0"}, "TIINGO_TOKEN_MAX_AGE_MINUTES must be >= 1, got 0"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'"),
    ],
)
def test_bad_values_are_named_by_variable(env, message):
    cls = {"SCRAPER_CONCURRENCY": ScraperSettings, "LOOKBACK_DAYS": ScraperSettings}.get(next(iter(env)))
    cls = cls or (LogSettings if "LOG_LEVEL" in env else TiingoSettings)
    with pytest.raises(ValueError, match=message):
        cls.from_env(env)


def test_the_data_location():
    assert data_location({"DATA_BUCKET": " b "}) == "s3://b"
    assert data_location({"DATA_DIR": "/tmp/d"}) == "/tmp/d"
    with pytest.raises(ValueError, match="DATA_BUCKET is required"):
        data_location({})
