"""The scraper end to end: the real handler code over a moto S3 server and the Tiingo simulator (HTTP)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest

import lambda_function
from stockpipe import scraper
from stockpipe.objectstore import S3ObjectStore
from stockpipe.prices import rows_to_table
from stockpipe.pricestore import PriceStore
from stockpipe.ratelimit import RateLimiter
from stockpipe.tiingo import TiingoClient
from stockpipe.universe import save_universe
from tests.conftest import TEST_TOKEN

TODAY = date(2024, 6, 14)  # the simulator fixture's "today" (a Friday)
EVENING = datetime(2024, 6, 14, 23, 0, tzinfo=UTC)


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def runtime(simulator, bucket, s3_client, sleeps):
    client = TiingoClient(TEST_TOKEN, base_url=simulator.base_url, sleep=sleeps.append, max_retries=4)
    rt = scraper.ScraperRuntime(S3ObjectStore(bucket, s3_client), client, clock=lambda: EVENING)
    yield rt
    client.close()


def stored(runtime, ticker):
    return PriceStore(runtime.store).read_ticker(ticker)


def expected(simulator, ticker, start, end):
    return rows_to_table(simulator.history(ticker, start, end))


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_range_values_round_trip_exactly(runtime, simulator):
    start, end = date(2023, 11, 1), date(2024, 2, 29)
    summary = scraper.handle(
        {"tickers": ["AAPL", "msft"], "start_date": str(start), "end_date": str(end)}, runtime
    )
    assert summary["failed"] == {}
    for ticker in ("AAPL", "MSFT"):
        want = expected(simulator, ticker, start, end)
        assert stored(runtime, ticker).equals(want)
        assert summary["succeeded"][ticker]["rows"] == want.num_rows
    assert sorted(k.split("/")[3] for k in runtime.store.list_keys("prices/daily/ticker=AAPL/")) == [
        "year=2023",
        "year=2024",
    ]


def test_catch_up_without_history_stores_the_latest_bar_only(runtime, simulator):
    summary = scraper.handle({"tickers": ["NVDA"]}, runtime)
    assert summary["mode"] == "catch_up"
    assert stored(runtime, "NVDA").column("date").to_pylist() == [TODAY]
    assert simulator.count(kind="latest") == 1


def test_catch_up_rereads_the_lookback_window(runtime, simulator):
    scraper.handle({"tickers": ["SPY"], "start_date": "2024-05-01", "end_date": "2024-06-05"}, runtime)
    simulator.reset_stats()
    summary = scraper.handle({"tickers": ["SPY"]}, runtime)
    (request,) = [r for r in simulator.requests if r.path.endswith("/prices")]
    assert request.params["startDate"] == str(date(2024, 6, 5) - timedelta(days=7))
    assert request.params["endDate"] == str(TODAY)
    assert stored(runtime, "SPY").equals(expected(simulator, "SPY", date(2024, 5, 1), TODAY))
    assert summary["succeeded"]["SPY"]["end"] == str(TODAY)


def test_universe_is_read_from_the_bucket(runtime):
    save_universe(runtime.store, ["aapl", "BRK.B"])
    summary = scraper.handle({"start_date": "2024-06-03", "end_date": "2024-06-07"}, runtime)
    assert sorted(summary["succeeded"]) == ["AAPL", "BRK-B"]


def test_missing_universe_is_a_clear_error(runtime, simulator):
    with pytest.raises(ValueError, match=r"config/universe\.json"):
        scraper.handle({}, runtime)
    assert simulator.count() == 0


def test_unknown_ticker_is_isolated(runtime):
    summary = scraper.handle(
        {"tickers": ["XYZQ", "AAPL"], "start_date": "2024-06-03", "end_date": "2024-06-07"}, runtime
    )
    assert summary["succeeded"]["AAPL"]["rows"] == 5
    assert summary["failed"]["XYZQ"]["error"] == "not_found"
    assert "XYZQ" in summary["failed"]["XYZQ"]["message"]


@pytest.mark.parametrize("fault", ["429", "500", "503", "reset"])
def test_transient_faults_are_retried_to_success(runtime, simulator, fault):
    simulator.inject(fault, count=2)
    summary = scraper.handle(
        {"tickers": ["MSFT"], "start_date": "2024-01-02", "end_date": "2024-03-28"}, runtime
    )
    assert summary["failed"] == {}
    assert summary["succeeded"]["MSFT"]["retries"] == 2
    assert summary["retries"] == 2
    assert stored(runtime, "MSFT").equals(expected(simulator, "MSFT", date(2024, 1, 2), date(2024, 3, 28)))


def test_auth_failure_is_reported_and_stops_further_requests(simulator, bucket, s3_client, capsys):
    client = TiingoClient("wrong-" + TEST_TOKEN, base_url=simulator.base_url, sleep=lambda s: None)
    rt = scraper.ScraperRuntime(S3ObjectStore(bucket, s3_client), client, clock=lambda: EVENING)
    rt.settings = scraper.ScraperSettings(concurrency=1)
    summary = scraper.handle({"tickers": ["AAPL", "MSFT", "SPY"], "start_date": "2024-06-03"}, rt)
    assert summary["succeeded"] == {}
    assert summary["failed"]["AAPL"]["error"] == "auth"
    assert {summary["failed"][t]["error"] for t in ("MSFT", "SPY")} == {"skipped"}
    assert simulator.count() == 1  # no retry storm, no request for the other tickers
    assert list(rt.store.list_keys("prices/")) == []
    out = capsys.readouterr().out
    assert TEST_TOKEN not in out
    assert TEST_TOKEN not in json.dumps(summary)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([], "JSON object"),
        ({"ticker": ["AAPL"]}, "unknown event key"),
        ({"tickers": "AAPL"}, "list of strings"),
        ({"tickers": []}, "must not be empty"),
        ({"tickers": ["AA PL"]}, "invalid ticker 'AA PL'"),
        ({"tickers": ["AAPL", 7]}, "ticker must be a string"),
        ({"tickers": ["AAPL"], "start_date": "2024-13-01"}, "start_date must be a date"),
        ({"tickers": ["AAPL"], "start_date": 20240101}, "start_date must be a 'YYYY-MM-DD' string"),
        ({"tickers": ["AAPL"], "end_date": "2024-01-01"}, "end_date needs a start_date"),
        ({"tickers": ["AAPL"], "start_date": "2024-02-01", "end_date": "2024-01-01"}, "before start_date"),
    ],
)
def test_bad_events_raise_value_error_and_touch_nothing(runtime, simulator, event, message):
    with pytest.raises(ValueError, match=message):
        scraper.handle(event, runtime)
    assert simulator.count() == 0
    assert list(runtime.store.list_keys("")) == []


def test_scheduler_envelope_is_the_daily_catch_up(runtime):
    save_universe(runtime.store, ["AAPL"])
    envelope = {"version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.scheduler"}
    assert scraper.handle(envelope, runtime)["mode"] == "catch_up"


def test_same_event_twice_leaves_the_same_rows(runtime, simulator):
    event = {"tickers": ["AMZN"], "start_date": "2023-12-01", "end_date": "2024-01-31"}
    scraper.handle(event, runtime)
    first = stored(runtime, "AMZN")
    scraper.handle(event, runtime)
    assert stored(runtime, "AMZN").equals(first)


def test_new_dividend_rewrites_the_stored_history(runtime, simulator):
    scraper.handle({"tickers": ["AAPL"], "start_date": "2022-01-03", "end_date": "2024-06-07"}, runtime)
    before = stored(runtime, "AAPL")
    runtime.clock = lambda: EVENING + timedelta(days=7)  # stored rows were fetched before the event
    simulator.today = TODAY + timedelta(days=7)
    simulator.add_event("AAPL", TODAY + timedelta(days=3), div_cash=5.0)
    summary = scraper.handle({"tickers": ["AAPL"]}, runtime)
    assert summary["succeeded"]["AAPL"]["rewritten"] is True
    after = stored(runtime, "AAPL")
    assert after.equals(expected(simulator, "AAPL", date(2022, 1, 3), simulator.today))
    assert after.column("adj_close")[0] != before.column("adj_close")[0]  # 2022 adj prices restated


def test_historical_events_in_a_backfill_chunk_trigger_nothing(runtime, simulator):
    scraper.handle({"tickers": ["MSFT"], "start_date": "2024-01-02", "end_date": "2024-06-07"}, runtime)
    older = {"tickers": ["MSFT"], "start_date": "2010-01-04", "end_date": "2012-12-31"}
    assert any(r["divCash"] for r in simulator.history("MSFT", date(2010, 1, 4), date(2012, 12, 31)))
    summary = scraper.handle(older, runtime)
    assert summary["succeeded"]["MSFT"]["rewritten"] is False
    assert simulator.count(kind="prices") == 2


def test_logs_are_json_with_an_emf_summary_and_no_token(runtime, capsys):
    scraper.handle(
        {"tickers": ["AAPL", "XYZQ"], "start_date": "2024-06-03", "end_date": "2024-06-07"}, runtime
    )
    out = capsys.readouterr().out
    assert TEST_TOKEN not in out
    lines = json_lines(out)
    per_ticker = {
        line["ticker"]: line for line in lines if line.get("message") in {"ticker scraped", "ticker failed"}
    }
    assert per_ticker["AAPL"]["rows"] == 5
    assert per_ticker["XYZQ"]["error"] == "not_found"
    (summary,) = [line for line in lines if line.get("message") == "scrape finished"]
    (directive,) = summary["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "StockPipeline"
    assert {m["Name"] for m in directive["Metrics"]} == {
        "RowsWritten",
        "TickersFailed",
        "Retries",
        "Requests",
    }
    assert summary["RowsWritten"] == 5
    assert summary["TickersFailed"] == 1


def emf_summary(out):
    (line,) = [line for line in json_lines(out) if line.get("message") == "scrape finished"]
    return line


def test_catch_up_reports_how_many_trading_days_the_stalest_ticker_is_behind(runtime, simulator, capsys):
    scraper.handle(
        {"tickers": ["AAPL", "MSFT"], "start_date": "2024-06-03", "end_date": "2024-06-12"}, runtime
    )
    simulator.inject("500", 10, ticker="MSFT")  # MSFT's catch-up fails: it stays at Wednesday
    capsys.readouterr()
    summary = scraper.handle({"tickers": ["AAPL", "MSFT"]}, runtime)
    assert summary["failed"]["MSFT"]["error"] == "server"
    line = emf_summary(capsys.readouterr().out)
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert {"Name": "TradingDaysBehind", "Unit": "Count"} in directive["Metrics"]
    assert line["TradingDaysBehind"] == 2  # Thursday and Friday


def test_a_market_holiday_is_not_a_day_behind(runtime, simulator, capsys):
    simulator.today = date(2024, 7, 3)
    scraper.handle({"tickers": ["SPY"], "start_date": "2024-06-24", "end_date": "2024-07-03"}, runtime)
    runtime.clock = lambda: datetime(2024, 7, 5, 1, 0, tzinfo=UTC)  # July 4th, 21:00 in New York
    capsys.readouterr()
    scraper.handle({"tickers": ["SPY"]}, runtime)
    assert emf_summary(capsys.readouterr().out)["TradingDaysBehind"] == 0


def test_range_mode_emits_no_freshness_figure(runtime, capsys):
    scraper.handle({"tickers": ["SPY"], "start_date": "2010-01-04", "end_date": "2010-02-26"}, runtime)
    assert "TradingDaysBehind" not in emf_summary(capsys.readouterr().out)


def test_lambda_handler_builds_its_runtime_from_the_environment(simulator, bucket, monkeypatch, tmp_path):
    monkeypatch.setenv("DATA_BUCKET", bucket)
    monkeypatch.setenv("TIINGO_API_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("TIINGO_BASE_URL", simulator.base_url)
    lambda_function.runtime.cache_clear()
    try:
        summary = lambda_function.lambda_handler(
            {"tickers": ["GOOGL"], "start_date": "2023-12-01", "end_date": "2024-01-31"}, None
        )
    finally:
        lambda_function.runtime.cache_clear()
    assert summary["succeeded"]["GOOGL"]["rows"] > 0
    # The stored objects are plain Hive-partitioned Parquet: copy them down and query with DuckDB.
    store = S3ObjectStore(bucket, __import__("boto3").client("s3"))
    for key in store.list_keys("prices/"):
        path = tmp_path / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(store.get(key).body)
    ((count,),) = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{tmp_path}/prices/daily/*/*/*.parquet', hive_partitioning=true)"
        " WHERE ticker = 'GOOGL' AND year = 2024"
    ).fetchall()
    assert count == expected(simulator, "GOOGL", date(2024, 1, 1), date(2024, 1, 31)).num_rows


def test_missing_data_bucket_is_named(monkeypatch):
    monkeypatch.delenv("DATA_BUCKET", raising=False)
    monkeypatch.delenv("DATA_DIR", raising=False)
    monkeypatch.setenv("TIINGO_API_TOKEN", TEST_TOKEN)
    lambda_function.runtime.cache_clear()
    with pytest.raises(ValueError, match="DATA_BUCKET is required"):
        lambda_function.lambda_handler({}, None)
    lambda_function.runtime.cache_clear()


def test_catch_up_over_the_hourly_quota_is_fair_across_runs(simulator, bucket, s3_client):
    """Free plan, more tickers than one run's quota: a run stops cleanly at the client-side limit, and
    the next run starts with the tickers the last one did not reach (furthest behind first)."""
    store = S3ObjectStore(bucket, s3_client)
    seed = scraper.ScraperRuntime(
        store, TiingoClient(TEST_TOKEN, base_url=simulator.base_url), clock=lambda: EVENING
    )
    tickers = ["AAPL", "MSFT", "SPY", "JPM"]
    scraper.handle({"tickers": tickers, "start_date": "2024-05-01", "end_date": "2024-06-07"}, seed)
    seed.client.close()
    simulator.reset_stats()

    def run_with_fresh_quota():
        client = TiingoClient(
            TEST_TOKEN, base_url=simulator.base_url, rate_limiter=RateLimiter.per_hour(2), max_limiter_wait=60
        )
        runtime = scraper.ScraperRuntime(store, client, clock=lambda: EVENING)
        runtime.settings = scraper.ScraperSettings(concurrency=1)
        try:
            return scraper.handle({"tickers": tickers}, runtime)
        finally:
            client.close()

    first = run_with_fresh_quota()
    assert len(first["succeeded"]) == 2
    assert {f["error"] for f in first["failed"].values()} <= {"rate_limited", "skipped"}
    assert "client-side limit" in " ".join(f["message"] for f in first["failed"].values())
    second = run_with_fresh_quota()
    assert set(second["succeeded"]) == set(first["failed"])  # the ones left behind went first
    assert simulator.count() == 4  # never more than the quota: no request was refused by Tiingo
    for ticker in tickers:
        assert PriceStore(store).last_date(ticker) == TODAY
