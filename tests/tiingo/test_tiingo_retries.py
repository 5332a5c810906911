"""Retries of the Tiingo client: which faults, how many, how long (backoff and Retry-After), and the
client-side rate limiter taken for every attempt."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime

import pytest

from stockpipe.errors import (
    MonthlyLimitError,
    NetworkError,
    RateLimitError,
    ServerError,
    TransportError,
)
from stockpipe.prices import reply_table
from stockpipe.ratelimit import RateLimiter
from stockpipe.tiingo import DEFAULT_NETWORK_RETRIES, RequestStats, TiingoClient
from stockpipe_local.simulator import HOURLY_LIMIT_DETAIL, TiingoSimulator
from tests.conftest import TEST_TOKEN
from tests.fakes import CLIENT_MAX_RETRIES as MAX_RETRIES
from tests.fakes import SleepRecorder
from tests.tiingo_standin import TiingoStandIn


@pytest.mark.parametrize("fault", ["429", "500", "502", "503", "reset", "timeout"])
def test_retryable_faults_are_retried_to_success(
    simulator: TiingoSimulator, sleeps: SleepRecorder, fault: str
) -> None:
    simulator.slow_seconds = 1.0
    simulator.inject(fault, 2, ticker="AAPL")
    stats = RequestStats()
    with TiingoClient(
        TEST_TOKEN, base_url=simulator.base_url, timeout=0.25, max_retries=MAX_RETRIES, sleep=sleeps
    ) as c:
        table = reply_table(c.get_prices("AAPL", date(2024, 6, 10), date(2024, 6, 14), stats=stats))
        assert table.num_rows == 5
        assert (stats.requests, stats.retries) == (3, 2)
        assert stats.rate_limited == (2 if fault == "429" else 0)
        assert (c.stats.requests, c.stats.retries) == (3, 2)
    assert simulator.count(ticker="AAPL") == 3
    assert len(sleeps.calls) == 2
    # Full jitter within the exponential cap (0.5 s, then 1 s).
    assert 0 <= sleeps.calls[0] <= 0.5
    assert 0 <= sleeps.calls[1] <= 1.0


@pytest.mark.parametrize(
    ("fault", "error", "retries"),
    [
        ("500", ServerError, MAX_RETRIES),
        ("429", RateLimitError, MAX_RETRIES),
        ("timeout", TransportError, MAX_RETRIES),
        ("reset", NetworkError, DEFAULT_NETWORK_RETRIES),  # unreachable: a short retry, then the run stops
    ],
)
def test_retries_are_bounded(
    simulator: TiingoSimulator, sleeps: SleepRecorder, fault: str, error: type, retries: int
) -> None:
    simulator.slow_seconds = 1.0
    simulator.inject(fault, 50)
    stats = RequestStats()
    c = TiingoClient(
        TEST_TOKEN, base_url=simulator.base_url, timeout=0.25, max_retries=MAX_RETRIES, sleep=sleeps
    )
    with c, pytest.raises(error) as caught:
        c.get_latest("AAPL", stats=stats)
    assert caught.value.retryable
    assert simulator.count() == retries + 1
    assert (stats.requests, stats.retries) == (retries + 1, retries)  # a lost connection may have counted
    assert len(sleeps.calls) == retries
    assert all(0 <= s <= min(30.0, 0.5 * 2**i) for i, s in enumerate(sleeps.calls))


def test_retry_after_seconds_and_http_date_are_honoured(
    client: TiingoClient, simulator: TiingoSimulator, sleeps: SleepRecorder
) -> None:
    simulator.inject("429", retry_after=7)
    simulator.inject("429", retry_after=2.5)
    assert reply_table(client.get_latest("AAPL")).num_rows == 1
    assert sleeps.calls == [7.0, 2.5]
    assert simulator.count(status=429) == 2


def test_retry_after_http_date(sleeps: SleepRecorder) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    body = json.dumps({"detail": HOURLY_LIMIT_DETAIL}).encode()
    server = TiingoStandIn.scripted([(429, {"Retry-After": when}, body), (200, {}, b"[]")])
    with server, TiingoClient(TEST_TOKEN, base_url=server.url, sleep=sleeps) as c:
        assert reply_table(c.get_latest("AAPL")).num_rows == 0
    assert len(server.requests) == 2
    assert len(sleeps.calls) == 1
    assert 15 <= sleeps.calls[0] <= 20


def test_retry_after_beyond_backoff_max_fails_fast(simulator: TiingoSimulator, sleeps: SleepRecorder) -> None:
    simulator.inject("429", retry_after=3600)
    c = TiingoClient(TEST_TOKEN, base_url=simulator.base_url, backoff_max=30, sleep=sleeps)
    with c, pytest.raises(RateLimitError) as caught:
        c.get_latest("AAPL")
    assert caught.value.retry_after == 3600
    assert not isinstance(caught.value, MonthlyLimitError)
    assert sleeps.calls == []
    assert simulator.count() == 1


def test_rate_limiter_is_acquired_for_every_attempt(
    simulator: TiingoSimulator, sleeps: SleepRecorder
) -> None:
    now = [0.0]
    limiter_sleeps: list[float] = []

    def limiter_sleep(seconds: float) -> None:
        limiter_sleeps.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(2, 60.0, clock=lambda: now[0], sleep=limiter_sleep)
    simulator.inject("500")
    with TiingoClient(TEST_TOKEN, base_url=simulator.base_url, rate_limiter=limiter, sleep=sleeps) as c:
        c.get_latest("AAPL")  # two attempts: both slots used
        assert limiter_sleeps == []
        c.get_latest("AAPL")  # third attempt waits for the window
    assert limiter_sleeps == [60.0]
    assert simulator.count() == 3


def test_limiter_keeps_a_quota_server_free_of_429(sleeps: SleepRecorder) -> None:
    with TiingoSimulator(token=TEST_TOKEN, today=date(2024, 6, 14), quota=5, quota_window=3600) as sim:
        limiter = RateLimiter(5, 3600.0)
        with TiingoClient(TEST_TOKEN, base_url=sim.base_url, rate_limiter=limiter, sleep=sleeps) as c:
            for _ in range(5):
                c.get_latest("AAPL")
            assert limiter.try_acquire() is False  # the next request would have to wait, not 429
        assert sim.count(status=429) == 0
