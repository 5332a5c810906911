"""BackfillSettings and its environment variables: one table, read and written by the same class."""

from __future__ import annotations

from datetime import date

import pytest

from stockpipe.backfill.settings import ENV_NAMES, BackfillSettings

TODAY = date(2024, 6, 14)


def test_to_env_and_from_env_round_trip() -> None:
    settings = BackfillSettings(
        start_date=date(2010, 1, 4),
        chunk_months=0,
        request_budget=7,
        concurrency=3,
        max_attempts=2,
        requests_per_step=1,
        lease_seconds=30,
        stop_margin_seconds=5,
        requests_per_hour=0,
        max_chunks_per_request=4,
    )
    env = settings.to_env()
    assert set(env) == set(ENV_NAMES.values())
    assert env["BACKFILL_START_DATE"] == "2010-01-04"
    assert BackfillSettings.from_env(env, today=TODAY) == settings
    assert BackfillSettings.from_env({}, today=TODAY) == BackfillSettings()
    assert env["BACKFILL_MAX_CHUNKS_PER_REQUEST"] == "4"


def test_to_env_writes_only_the_fields_asked_for_in_their_order() -> None:
    """What the Pulumi component sets (the stack's fields); the others keep the handler's defaults."""
    settings = BackfillSettings(start_date=date(2005, 3, 1), concurrency=4)
    env = settings.to_env(["start_date", "concurrency"])
    assert list(env.items()) == [("BACKFILL_START_DATE", "2005-03-01"), ("BACKFILL_CONCURRENCY", "4")]
    assert BackfillSettings.from_env(env, today=TODAY) == settings
    with pytest.raises(KeyError):
        settings.to_env(["no_such_field"])


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BACKFILL_START_DATE": "01/02/2020"}, "BACKFILL_START_DATE must be a date YYYY-MM-DD"),
        (
            {"BACKFILL_START_DATE": "2024-06-15"},
            r"BACKFILL_START_DATE 2024-06-15 is after today \(2024-06-14\)",
        ),
        ({"BACKFILL_CONCURRENCY": "0"}, "BACKFILL_CONCURRENCY must be >= 1"),
        ({"BACKFILL_CHUNK_MONTHS": "-1"}, "BACKFILL_CHUNK_MONTHS must be >= 0"),
        ({"BACKFILL_REQUEST_BUDGET": "lots"}, "BACKFILL_REQUEST_BUDGET must be an integer"),
        ({"TIINGO_REQUESTS_PER_HOUR": "-5"}, "TIINGO_REQUESTS_PER_HOUR must be >= 0"),
        ({"BACKFILL_MAX_CHUNKS_PER_REQUEST": "-1"}, "BACKFILL_MAX_CHUNKS_PER_REQUEST must be >= 0"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BackfillSettings.from_env(env, today=TODAY)


def test_the_budget_never_exceeds_one_hour_of_quota() -> None:
    assert BackfillSettings(request_budget=80, requests_per_hour=50).effective_budget == 50
    assert BackfillSettings(request_budget=80, requests_per_hour=0).effective_budget == 80
