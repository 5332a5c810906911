"""What each Tiingo answer means: errors that are never retried, Tiingo's explanations (scrubbed,
cut), bodies that are not data."""

from __future__ import annotations

import json
from datetime import date

import pytest

from stockpipe.errors import (
    AuthenticationError,
    BadPayloadError,
    MonthlyLimitError,
    NotFoundError,
    RateLimitError,
    TiingoError,
)
from stockpipe.tiingo import RequestStats, TiingoClient
from stockpipe_local.simulator import MONTHLY_SYMBOL_TEXT, TiingoSimulator
from tests.conftest import TEST_TOKEN
from tests.fakes import SleepRecorder
from tests.tiingo_standin import TiingoStandIn


@pytest.mark.parametrize(
    ("fault", "error", "kind", "text"),
    [
        ("401", AuthenticationError, "auth", "Invalid token."),
        ("403", AuthenticationError, "auth", "Please supply a token"),
        ("monthly_limit", RateLimitError, "rate_limited", "500 symbol look up"),
        ("bandwidth", RateLimitError, "rate_limited", "bandwidth allocation"),
    ],
)
def test_errors_that_are_never_retried(
    client: TiingoClient, simulator: TiingoSimulator, sleeps: SleepRecorder, fault, error, kind, text
) -> None:
    simulator.inject(fault, 10)
    stats = RequestStats()
    with pytest.raises(error, match=text) as caught:
        client.get_prices("AAPL", date(2024, 6, 10), date(2024, 6, 14), stats=stats)
    assert caught.value.kind == kind
    assert "AAPL" in str(caught.value)
    assert simulator.count() == 1
    assert stats.requests == 1
    assert stats.retries == 0
    assert sleeps.calls == []
    if error is RateLimitError:
        assert isinstance(caught.value, MonthlyLimitError)
        assert caught.value.retryable is False
        assert stats.rate_limited == 1


def test_not_found_and_real_auth_errors(simulator: TiingoSimulator, sleeps: SleepRecorder) -> None:
    good = TiingoClient(TEST_TOKEN, base_url=simulator.base_url, sleep=sleeps)
    with good, pytest.raises(NotFoundError, match=r"BRK-A.*404.*Ticker 'BRK-A' not found") as caught:
        good.get_metadata("BRK-A")
    assert caught.value.kind == "not_found"
    bad = TiingoClient("wrong-token", base_url=simulator.base_url, sleep=sleeps)
    with bad, pytest.raises(AuthenticationError, match=r"401.*Invalid token"):
        bad.get_latest("AAPL")
    assert simulator.count() == 2
    assert sleeps.calls == []


def test_monthly_text_wrapped_in_detail_is_still_monthly(sleeps: SleepRecorder) -> None:
    """Tiingo sometimes wraps the monthly text in {"detail": ...}; with HTTP 200 or 429 it is monthly."""
    wrapped = json.dumps({"detail": MONTHLY_SYMBOL_TEXT}).encode()
    server = TiingoStandIn.scripted([(200, {}, wrapped), (429, {}, wrapped)])
    with server, TiingoClient(TEST_TOKEN, base_url=server.url, sleep=sleeps) as c:
        for _ in range(2):
            with pytest.raises(RateLimitError, match="500 symbol look up") as caught:
                c.get_latest("AAPL")
            assert isinstance(caught.value, MonthlyLimitError)
    assert len(server.requests) == 2
    assert sleeps.calls == []


def test_a_200_with_a_detail_quotes_tiingo_scrubbed_and_a_wrong_shape_is_named_by_type(sleeps) -> None:
    detail = json.dumps({"detail": f"Error: Ticker 'AAPL' not available for {TEST_TOKEN}"}).encode()
    shape = json.dumps({"rows": [TEST_TOKEN]}).encode()
    server = TiingoStandIn.scripted([(200, {}, detail), (200, {}, shape)])
    with server, TiingoClient(TEST_TOKEN, base_url=server.url, sleep=sleeps) as c:
        with pytest.raises(
            BadPayloadError, match=r"Tiingo says: Error: Ticker 'AAPL' not available for \*\*\*"
        ):
            c.get_latest("AAPL")
        with pytest.raises(BadPayloadError) as caught:
            c.get_latest("AAPL")
    assert str(caught.value) == "Tiingo request for AAPL: HTTP 200: expected a JSON list, got dict"


def test_a_body_that_is_not_a_list_of_rows_names_the_ticker(sleeps: SleepRecorder) -> None:
    server = TiingoStandIn.scripted([(200, {}, b'[{"date": "2024-06-10", "close": 1.0}, 7]')])
    c = TiingoClient(TEST_TOKEN, base_url=server.url, sleep=sleeps)
    with server, c, pytest.raises(BadPayloadError, match=r"Tiingo prices for AAPL: .*JSON object"):
        c.get_prices("AAPL", date(2024, 6, 10), date(2024, 6, 14))


def test_detail_is_sanitised_and_truncated(sleeps: SleepRecorder) -> None:
    nasty = {"detail": "bad\x1b[31m thing\n" + "x" * 5000 + TEST_TOKEN}
    server = TiingoStandIn.scripted([(400, {}, json.dumps(nasty).encode())])
    c = TiingoClient(TEST_TOKEN, base_url=server.url, sleep=sleeps)
    with server, c, pytest.raises(TiingoError) as caught:
        c.get_latest("AAPL")
    message = str(caught.value)
    assert "HTTP 400" in message
    assert "AAPL" in message
    assert message.isprintable()
    assert len(message) < 300
    assert TEST_TOKEN not in message
    assert len(server.requests) == 1  # a 400 is not retried


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("truncated", "not JSON"),
        ("html", r"not JSON \(text/html\)"),
        ("not_json_shape", "expected a JSON list, got dict"),
    ],
)
def test_bad_payloads_are_errors_not_data(
    client: TiingoClient, simulator: TiingoSimulator, sleeps: SleepRecorder, fault: str, message: str
) -> None:
    simulator.inject(fault)
    stats = RequestStats()
    with pytest.raises(BadPayloadError, match=message) as caught:
        client.get_prices("AAPL", date(2024, 6, 10), date(2024, 6, 14), stats=stats)
    assert "AAPL" in str(caught.value)
    assert "HTTP 200" in str(caught.value)
    if fault != "html":  # data, whole or cut off, is never quoted (an error page is, scrubbed)
        assert "date" not in str(caught.value)
    # A malformed 200 is not a transient transport problem: one attempt, no retry.
    assert (stats.requests, stats.retries) == (1, 0)
    assert simulator.count() == 1
    assert sleeps.calls == []
