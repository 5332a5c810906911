"""Fault-injection matrix: each fault hits a real scrape (simulator over HTTP, moto S3), then the stored
dataset must equal the fault-free truth — nothing lost, nothing duplicated — and any failure that could
not be retried away is reported by kind. Adding a fault is one line in CASES.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from botocore.stub import Stubber

from stockpipe import scraper
from stockpipe.errors import PreconditionFailed
from stockpipe.objectstore import S3ObjectStore
from stockpipe.prices import rows_to_table
from stockpipe.pricestore import PriceStore, object_key
from stockpipe.tiingo import TiingoClient
from tests.conftest import TEST_TOKEN
from tests.threads import run_concurrently

EVENING = datetime(2024, 6, 14, 23, 0, tzinfo=UTC)
TICKERS = ["AAPL", "MSFT", "SPY"]
EARLIER = (date(2023, 6, 1), date(2023, 12, 29))  # stored before the fault: must survive it
RANGE = (date(2024, 1, 2), date(2024, 6, 14))  # fetched under the fault


@dataclass(frozen=True)
class Case:
    fault: str
    count: int = 1
    retry_after: float | None = None
    error: str | None = None  # None: retried away; else the kind reported for the faulted ticker
    others: str | None = None  # kind reported for the tickers after it (None: they succeed)
    max_requests: int | None = None  # bound on requests in the faulted run (no retry storms)
    names: str = "AAPL"  # what the failure message must name


CASES = [
    Case("429", count=2),
    Case("429", count=2, retry_after=0.01),
    Case("500", count=3),
    Case("502"),
    Case("503", count=2),
    Case("timeout"),
    Case("reset", count=2),
    # Tiingo unreachable past the client's short retry: the run stops, nothing is lost.
    Case("reset", count=3, error="network", others="skipped", max_requests=3, names="cannot reach 127.0.0.1"),
    Case("monthly_limit", error="rate_limited", others="skipped", max_requests=1),
    Case("bandwidth", error="rate_limited", others="skipped", max_requests=1),
    Case("401", error="auth", others="skipped", max_requests=1),
    Case("403", error="auth", others="skipped", max_requests=1),
    Case("truncated", error="bad_payload", max_requests=3),
    Case("html", error="bad_payload", max_requests=3),
    Case("not_json_shape", error="bad_payload", max_requests=3),
    Case("empty"),  # a [] answer is "no rows", never an error and never a deletion
]


@pytest.fixture
def make_runtime(simulator, bucket, s3_client):
    clients = []

    def make(**client_options):
        client = TiingoClient(
            TEST_TOKEN, base_url=simulator.base_url, sleep=lambda s: None, timeout=1.0, **client_options
        )
        clients.append(client)
        runtime = scraper.ScraperRuntime(S3ObjectStore(bucket, s3_client), client, clock=lambda: EVENING)
        runtime.settings = scraper.ScraperSettings(concurrency=1)  # deterministic: the fault hits AAPL first
        return runtime

    yield make
    for client in clients:
        client.close()


def event(dates):
    return {"tickers": TICKERS, "start_date": str(dates[0]), "end_date": str(dates[1])}


def truth(simulator, ticker):
    return rows_to_table(simulator.history(ticker, EARLIER[0], RANGE[1]))


def dataset(runtime):
    return {ticker: PriceStore(runtime.store).read_ticker(ticker) for ticker in TICKERS}


@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: f"{c.fault}x{c.count}" + ("+retry-after" * bool(c.retry_after))
)
def test_fault(case, simulator, make_runtime, capsys):
    simulator.slow_seconds = 2.0  # the "timeout" fault outlasts the client's 1 s timeout
    runtime = make_runtime()
    scraper.handle(event(EARLIER), runtime)
    simulator.reset_stats()

    simulator.inject(case.fault, count=case.count, retry_after=case.retry_after)
    summary = scraper.handle(event(RANGE), runtime)

    if case.max_requests is not None:
        assert simulator.count() <= case.max_requests
    if case.error is None:
        assert summary["failed"] == {}
    else:
        assert summary["failed"]["AAPL"]["error"] == case.error
        assert case.names in summary["failed"]["AAPL"]["message"]  # the message names what failed
        for ticker in TICKERS[1:]:
            if case.others is None:
                assert ticker in summary["succeeded"]
            else:
                assert summary["failed"][ticker]["error"] == case.others
        scraper.handle(event(RANGE), runtime)  # the next scheduled run, fault gone

    if case.fault == "empty":
        scraper.handle(event(RANGE), runtime)  # an empty answer stored nothing; the next run fills it
    stored = dataset(runtime)
    for ticker in TICKERS:
        assert stored[ticker].equals(truth(simulator, ticker)), ticker
    out = capsys.readouterr().out
    assert TEST_TOKEN not in out
    assert TEST_TOKEN not in json.dumps(summary)


def test_unknown_ticker_is_isolated_and_parks_nothing_else(simulator, make_runtime):
    runtime = make_runtime()
    summary = scraper.handle({**event(RANGE), "tickers": ["AAPL", "XYZQ", "SPY"]}, runtime)
    assert summary["failed"]["XYZQ"]["error"] == "not_found"
    assert sorted(summary["succeeded"]) == ["AAPL", "SPY"]
    assert simulator.count(ticker="XYZQ") == 1  # 404 is never retried


def test_two_writers_race_on_the_same_objects(simulator, make_runtime):
    """Two scrapes of overlapping ranges at once (S3 412s between them): the union survives."""
    first, second = make_runtime(), make_runtime()
    run_concurrently(
        [
            lambda: scraper.handle(event((EARLIER[0], date(2024, 3, 28))), first),
            lambda: scraper.handle(event((date(2023, 12, 1), RANGE[1])), second),
        ]
    )
    stored = dataset(first)
    for ticker in TICKERS:
        assert stored[ticker].equals(truth(simulator, ticker))


def test_same_event_delivered_twice_at_once(simulator, make_runtime):
    """Lambda async delivery can duplicate an event: concurrent duplicates leave one copy of each row."""
    runtimes = [make_runtime(), make_runtime()]
    scraper.handle(event(EARLIER), runtimes[0])
    run_concurrently([lambda rt=rt: scraper.handle(event(RANGE), rt) for rt in runtimes])
    stored = dataset(runtimes[0])
    for ticker in TICKERS:
        assert stored[ticker].equals(truth(simulator, ticker))


def _conflict(code: str, status: int) -> dict:
    return {"service_error_code": code, "http_status_code": status}


@pytest.mark.parametrize(
    ("code", "status"), [("PreconditionFailed", 412), ("ConditionalRequestConflict", 409)]
)
def test_conditional_write_conflicts_are_retried(s3_client, bucket, code, status):
    """moto never answers 409 ConditionalRequestConflict, so a botocore Stubber plays S3 here."""
    import boto3

    stubbed = boto3.client("s3", region_name="us-east-1")
    store = S3ObjectStore(bucket, stubbed)
    key = object_key("AAPL", 2024)
    rows = rows_to_table(
        [{"date": "2024-01-02T00:00:00.000Z", "open": 1, "high": 2, "low": 1, "close": 2, "volume": 10}]
    )
    with Stubber(stubbed) as stub:
        stub.add_client_error("put_object", **_conflict(code, status))
        with pytest.raises(PreconditionFailed):
            store.put(key, b"x", expected_version=None)
        # PriceStore: no fetch times yet (GET absent, nothing listed), then the year: read (absent) ->
        # put conflicts -> read (absent) -> put succeeds, then the new fetch times are written.
        stub.add_client_error("get_object", service_error_code="NoSuchKey", http_status_code=404)
        stub.add_response("list_objects_v2", {"KeyCount": 0})
        for put_error in (True, False):
            stub.add_client_error("get_object", service_error_code="NoSuchKey", http_status_code=404)
            if put_error:
                stub.add_client_error("put_object", **_conflict(code, status))
            else:
                stub.add_response("put_object", {"ETag": '"abc"'})
        stub.add_response("put_object", {"ETag": '"def"'})
        PriceStore(store, sleep=lambda s: None).upsert("AAPL", rows, fetched_at=EVENING)
        stub.assert_no_pending_responses()
