"""Config validation (pure), naming, image tags and the freshness-day helper."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from components.alarms import FreshnessWindow, freshness_expression, freshness_window, run_days_utc
from components.config import (
    DEFAULTS,
    NEW_ACCOUNT_CONCURRENCY_LIMIT,
    SECRET_COMMAND,
    ConfigError,
    reservable_concurrency,
    validate_config,
    validate_schedule,
)
from components.image_tag import build_inputs, image_tag
from components.naming import glue_name, kebab, physical_name

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = {"tickers": ["aapl", "brk.b"], "tiingoApiToken": "<set>"}


def problems_of(raw: dict, **kw) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate_config(raw, **kw)
    return caught.value.problems


def test_minimal_config_takes_every_default():
    settings = validate_config(MINIMAL)
    assert settings.tickers == ("AAPL", "BRK-B")
    assert settings.scraper_schedule == "cron(30 20 ? * MON-FRI *)"
    assert settings.orchestrator_schedule == "rate(1 hour)"
    assert settings.schedule_timezone == "America/New_York"
    assert settings.tiingo_requests_per_hour == 50
    assert settings.backfill_request_budget == 40
    assert settings.backfill_chunk_months == 6
    assert settings.backfill_start_date == date(2000, 1, 1)
    assert settings.bucket_name is None
    assert settings.alarm_email is None
    assert settings.build_on_preview is False
    assert settings.scraper_reserved_concurrency == -1
    assert settings.tiingo_token_max_age_minutes == 15


def test_pulumi_yaml_declares_the_same_defaults_and_types():
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    assert set(declared) == set(DEFAULTS) | {"tickers"}
    assert declared["tickers"] == {**declared["tickers"], "type": "array", "items": {"type": "string"}}
    assert "default" not in declared["tickers"]
    kinds = {bool: "boolean", int: "integer", str: "string"}
    for key, default in DEFAULTS.items():
        assert declared[key]["default"] == default, key
        assert declared[key]["type"] == kinds[type(default)], key
        assert declared[key]["description"], key
    runtime = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["runtime"]
    assert runtime == {"name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}


def test_string_values_from_pulumi_are_coerced():
    settings = validate_config(
        {**MINIMAL, "lookbackDays": "10", "buildOnPreview": "true", "tickers": '["msft"]'}
    )
    assert settings.lookback_days == 10
    assert settings.build_on_preview is True
    assert settings.tickers == ("MSFT",)


def test_missing_token_names_the_exact_command():
    problems = problems_of({"tickers": ["AAPL"]})
    assert problems == [f"the Tiingo API token is missing: run `{SECRET_COMMAND}`"]
    assert SECRET_COMMAND == "pulumi config set --secret tiingoApiToken <your-token>"
    assert problems_of({"tickers": ["AAPL"], "tiingoApiToken": "  "}) == problems


def test_plaintext_token_is_refused():
    (problem,) = problems_of(MINIMAL, token_is_secret=False)
    assert "plaintext" in problem
    assert SECRET_COMMAND in problem


@pytest.mark.parametrize(
    ("tickers", "expected"),
    [
        ([], "tickers is empty"),
        (None, "tickers is required"),
        ("AAPL", "tickers must be a list"),
        (["AAPL", "BAD TICKER"], "invalid ticker 'BAD TICKER'"),
        (["AAPL", 42], "ticker must be a string"),
        ({"a": 1}, "tickers must be a list of symbols"),
    ],
)
def test_bad_tickers(tickers, expected):
    raw = {**MINIMAL, "tickers": tickers}
    if tickers is None:
        del raw["tickers"]
    (problem,) = problems_of(raw)
    assert expected in problem


@pytest.mark.parametrize(
    "expression",
    ["cron(30 20 ? * MON-FRI *)", "cron(0 * * * ? *)", "rate(1 hour)", "rate(15 minutes)", "rate(2 days)"],
)
def test_valid_schedules(expression):
    assert validate_schedule(expression) is None


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("cron(30 20 * * MON-FRI *)", "exactly one of day-of-month and day-of-week"),
        ("cron(30 20 ? * MON-FRI)", "needs 6 fields"),
        ("cron(30 20 ? * MON-FRI * *)", "needs 6 fields"),
        ("cron(30 20 ? * MON;FRI *)", "characters"),
        ("rate(1 hours)", "singular"),
        ("rate(5 hour)", "singular"),
        ("rate(0 minutes)", ">= 1"),
        ("rate(1 week)", "not a schedule"),
        ("30 20 * * 1-5", "not a schedule"),
        ("at(2024-01-01T00:00:00)", "not a schedule"),
    ],
)
def test_invalid_schedules(expression, expected):
    assert expected in (validate_schedule(expression) or "")
    (problem,) = problems_of({**MINIMAL, "scraperSchedule": expression})
    assert problem.startswith("scraperSchedule: ")


def test_chunk_months_below_zero_is_an_error_and_zero_is_allowed():
    assert validate_config({**MINIMAL, "backfillChunkMonths": 0}).backfill_chunk_months == 0
    (problem,) = problems_of({**MINIMAL, "backfillChunkMonths": -1})
    assert problem == "backfillChunkMonths must be between 0 and 1200, got -1"


def test_every_problem_is_reported_at_once():
    problems = problems_of(
        {
            "tickers": [],
            "orchestratorSchedule": "every hour",
            "backfillChunkMonths": -3,
            "scheduleTimezone": "Mars/Olympus",
            "logRetentionDays": 31,
            "backfillStartDate": "2000-13-01",
            "scraperMemoryMb": "lots",
            "alarmEmail": "nobody",
            "bucketName": "Not_A_Bucket",
            "tiingoBaseUrl": "ftp://example.com",
            "logLevel": "LOUD",
            "buildOnPreview": "yes",
            "ticker": ["AAPL"],
        }
    )
    joined = "\n".join(problems)
    for fragment in (
        "unknown setting stock-pipeline:ticker (did you mean 'tickers'?)",
        "tiingoApiToken",
        "tickers is empty",
        "orchestratorSchedule",
        "backfillChunkMonths",
        "Mars/Olympus",
        "logRetentionDays must be one of",
        "backfillStartDate must be a date",
        "scraperMemoryMb must be an integer",
        "alarmEmail",
        "bucketName",
        "tiingoBaseUrl",
        "logLevel",
        "buildOnPreview must be true or false",
    ):
        assert fragment in joined
    assert len(problems) == 14
    assert str(ConfigError(problems)).startswith("invalid stack configuration (14 problem(s)):")


def test_budget_must_leave_room_for_the_daily_scrape():
    (problem,) = problems_of({**MINIMAL, "backfillRequestBudget": 50})
    assert "below tiingoRequestsPerHour" in problem
    assert validate_config({**MINIMAL, "backfillRequestBudget": 49}).backfill_request_budget == 49


def test_reserved_concurrency_zero_is_refused_and_minus_one_means_unreserved():
    assert "disable the scraper" in problems_of({**MINIMAL, "scraperReservedConcurrency": 0})[0]
    assert validate_config({**MINIMAL, "scraperReservedConcurrency": -1}).scraper_reserved_concurrency == -1


def test_reserved_concurrency_must_fit_the_backfill_fan_out():
    (problem,) = problems_of({**MINIMAL, "scraperReservedConcurrency": 1, "backfillConcurrency": 2})
    assert "below backfillConcurrency" in problem
    assert validate_config({**MINIMAL, "scraperReservedConcurrency": 3, "backfillConcurrency": 3})


def test_the_default_reservation_is_one_a_new_account_accepts():
    """Lambda keeps >= 100 concurrency unreserved (Developer Guide, "Configuring reserved concurrency")."""
    assert reservable_concurrency(NEW_ACCOUNT_CONCURRENCY_LIMIT) == 0  # a new account: nothing to reserve
    assert reservable_concurrency(1000) == 900
    assert DEFAULTS["scraperReservedConcurrency"] == -1  # no reservation: accepted everywhere


@pytest.mark.parametrize(
    "url",
    [
        "https://api.tiingo.com",
        "https://proxy.example.com:8443/tiingo",
        "http://127.0.0.1:8999",
        "http://localhost:80",
        "http://[::1]:8999/",
        "http://127.8.9.10",
    ],
)
def test_tiingo_base_url_is_https_or_a_loopback_simulator(url):
    assert validate_config({**MINIMAL, "tiingoBaseUrl": url}).tiingo_base_url == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    [
        "http://api.tiingo.com",
        "http://10.0.0.5:8999",
        "http://127.0.0.1.nip.io",
        "ftp://api.tiingo.com",
        "https://",
        "api.tiingo.com",
        "https://api.tiingo.com /x",
    ],
)
def test_tiingo_base_url_in_clear_text_over_a_network_is_refused(url):
    (problem,) = problems_of({**MINIMAL, "tiingoBaseUrl": url})
    assert problem.startswith("tiingoBaseUrl must")
    assert "https://" in problem


def test_token_max_age_is_minutes_within_a_day():
    assert validate_config({**MINIMAL, "tiingoTokenMaxAgeMinutes": "60"}).tiingo_token_max_age_minutes == 60
    for bad in (0, 1441, "soon"):
        (problem,) = problems_of({**MINIMAL, "tiingoTokenMaxAgeMinutes": bad})
        assert problem.startswith("tiingoTokenMaxAgeMinutes must")


def test_future_backfill_start_is_refused():
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    assert "in the future" in problems_of({**MINIMAL, "backfillStartDate": tomorrow})[0]


def test_the_token_value_never_appears_in_errors():
    canary = "tok-CANARY-in-config"
    with pytest.raises(ConfigError) as caught:
        validate_config({"tickers": [], "tiingoApiToken": canary, "ticker": ["AAPL"]})
    assert len(caught.value.problems) == 2
    assert canary not in str(caught.value)


# --- naming -------------------------------------------------------------------------------------------


def test_physical_names_are_kebab_case_and_stack_qualified():
    assert physical_name("tiingo-price-scraper", "dev") == "tiingo-price-scraper-dev"
    assert (
        physical_name("tiingo-price-scraper", "Prod_EU.1", suffix="dlq")
        == "tiingo-price-scraper-dlq-prod-eu-1"
    )
    assert kebab("  My__Stack  ") == "my-stack"
    assert glue_name("stock-pipeline", "dev") == "stock_pipeline_dev"


def test_long_names_are_trimmed_but_stay_unique():
    a = physical_name(
        "tiingo-backfill-orchestrator", "a-very-long-feature-branch-stack-name-1", suffix="scheduler"
    )
    b = physical_name(
        "tiingo-backfill-orchestrator", "a-very-long-feature-branch-stack-name-2", suffix="scheduler"
    )
    assert len(a) <= 64
    assert len(b) <= 64
    assert a != b


# --- image tags ---------------------------------------------------------------------------------------


def _context(tmp_path: Path) -> Path:
    (tmp_path / "stockpipe").mkdir()
    (tmp_path / "stockpipe" / "prices.py").write_text("A = 1\n")
    (tmp_path / "scraper").mkdir()
    (tmp_path / "scraper" / "Dockerfile").write_text("FROM x\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "Dockerfile").write_text("FROM y\n")
    return tmp_path


def test_image_tag_follows_exactly_the_build_inputs(tmp_path):
    context = _context(tmp_path)
    first = image_tag(context, "scraper")
    assert first.startswith("src-")
    assert len(first) == 24
    assert image_tag(context, "scraper") == first
    (context / "other" / "Dockerfile").write_text("FROM z\n")  # another Lambda's folder
    (context / "stockpipe" / "__pycache__").mkdir()
    (context / "stockpipe" / "__pycache__" / "prices.cpython-311.pyc").write_bytes(b"\0")
    assert image_tag(context, "scraper") == first
    (context / "stockpipe" / "prices.py").write_text("A = 2\n")  # the shared package
    second = image_tag(context, "scraper")
    assert second != first
    (context / "scraper" / "Dockerfile").write_text("FROM x2\n")  # its own folder
    assert image_tag(context, "scraper") not in (first, second)
    (context / ".dockerignore").write_text("tests\n")
    assert context / ".dockerignore" in build_inputs(context, "scraper")


def test_image_tag_depends_on_file_names_too(tmp_path):
    context = _context(tmp_path)
    before = image_tag(context, "scraper")
    (context / "stockpipe" / "prices.py").rename(context / "stockpipe" / "price.py")
    assert image_tag(context, "scraper") != before


def test_real_lambda_images_get_different_tags():
    lambdas = ROOT / "lambdas"
    assert image_tag(lambdas, "tiingo_price_scraper") != image_tag(lambdas, "tiingo_backfill_orchestrator")


# --- freshness days -----------------------------------------------------------------------------------


def test_weekday_evening_runs_land_on_tuesday_to_saturday_utc():
    assert run_days_utc("cron(30 20 ? * MON-FRI *)", "America/New_York") == [2, 3, 4, 5, 6]
    # 24-hour windows starting Tue..Fri (UTC) always hold a run; runs start 00:30 (EDT) or 01:30 (EST) UTC.
    window = freshness_window("cron(30 20 ? * MON-FRI *)", "America/New_York")
    assert window == FreshnessWindow(check_days=(2, 3, 4, 5), blind_hours=(0, 1, 2))
    expression = freshness_expression(window)
    assert expression == (
        "IF((DAY(filled) == 2 OR DAY(filled) == 3 OR DAY(filled) == 4 OR DAY(filled) == 5)"
        " AND (HOUR(filled) != 0 AND HOUR(filled) != 1 AND HOUR(filled) != 2), filled, 1)"
    )


def test_run_days_straddling_utc_midnight_keep_only_certain_days():
    # 19:30 New York is 00:30 UTC next day in winter but 23:30 the same day in summer.
    assert run_days_utc("cron(30 19 ? * MON-FRI *)", "America/New_York") == [2, 3, 4, 5]
    assert freshness_window("cron(30 19 ? * MON-FRI *)", "America/New_York").check_days == (2, 3, 4)
    assert run_days_utc("cron(0 10 ? * MON-FRI *)", "UTC") == [1, 2, 3, 4, 5]
    assert freshness_window("cron(0 10 ? * MON-FRI *)", "UTC") == FreshnessWindow((1, 2, 3, 4), (10, 11))
    assert freshness_window("cron(0 10 ? * * *)", "UTC").check_days == (1, 2, 3, 4, 5, 6, 7)
    assert freshness_window("cron(0 23 ? * * *)", "UTC").blind_hours == (0, 23)


def test_unparsed_schedules_judge_every_window():
    assert run_days_utc("rate(1 day)", "UTC") is None
    assert freshness_window("cron(0 10 ? * 2-6 *)", "UTC") is None
    assert freshness_expression(None) == "filled"
    assert "DAY(filled)" not in freshness_expression(None)
