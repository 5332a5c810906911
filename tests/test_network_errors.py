"""Tiingo unreachable is its own failure kind (``network``), on real loopback sockets: a closed port
(refused), a listener whose backlog is full (connect timeout), TLS spoken to a plain-HTTP server, and a
connection the server resets after reading the request (the simulator's ``reset`` fault). DNS failures
raise the same httpx error as a refused connection; one case plays it through httpx's MockTransport,
since resolving a name is not a loopback operation.

What it costs: a connection that was never made is no Tiingo request (not counted, its rate-limiter
slot handed back); one that broke after the request was sent may have counted at Tiingo and is kept.
Either way the scraper stops the run at once and the other tickers are ``skipped``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime

import httpx
import pytest

from stockpipe import scraper
from stockpipe.errors import NetworkError, TransportError, stops_run
from stockpipe.objectstore import S3ObjectStore
from stockpipe.prices import reply_table
from stockpipe.ratelimit import RateLimiter
from stockpipe.tiingo import DEFAULT_NETWORK_RETRIES, RequestStats, TiingoClient
from tests.conftest import TEST_TOKEN
from tests.tiingo_standin import TiingoStandIn, bar, json_reply

EVENING = datetime(2024, 6, 14, 23, 0, tzinfo=UTC)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nobody listens here once the probe is closed


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A listener that never accepts, its queue filled: the kernel drops further SYNs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for sock in [*fillers, server]:
        sock.close()


class Limiter:
    """A real RateLimiter on a frozen clock: waiting would raise, so a leaked slot shows."""

    def __init__(self, limit: int) -> None:
        self.limiter = RateLimiter(limit, 3600.0, clock=lambda: 0.0, sleep=self._no_sleep)

    @staticmethod
    def _no_sleep(seconds: float) -> None:
        raise AssertionError(f"the limiter made us wait {seconds} s")


def unreachable(url: str, limiter: RateLimiter | None = None, **options) -> tuple[NetworkError, RequestStats]:
    stats = RequestStats()
    sleeps: list[float] = []
    with (
        TiingoClient(
            TEST_TOKEN, base_url=url, timeout=0.3, rate_limiter=limiter, sleep=sleeps.append, **options
        ) as c,
        pytest.raises(NetworkError) as caught,
    ):
        c.get_prices("AAPL", date(2024, 6, 3), date(2024, 6, 14), stats=stats)
    assert len(sleeps) == DEFAULT_NETWORK_RETRIES  # a short retry, not the 4 of a Tiingo error
    assert all(s <= 1.0 for s in sleeps)
    return caught.value, stats


def test_a_refused_connection_is_network_and_no_request(closed_port):
    limiter = Limiter(DEFAULT_NETWORK_RETRIES)  # fewer slots than attempts: each must be handed back
    error, stats = unreachable(f"http://127.0.0.1:{closed_port}", limiter.limiter)
    assert error.kind == "network"
    assert stops_run(error.kind)
    assert str(error) == "cannot reach 127.0.0.1: [Errno 111] Connection refused"
    assert (stats.requests, stats.retries) == (0, DEFAULT_NETWORK_RETRIES)
    assert all(limiter.limiter.try_acquire() for _ in range(DEFAULT_NETWORK_RETRIES))


def test_a_connect_timeout_is_network_not_timeout(full_backlog):
    """No route to the API looked like `timeout` ten times, then a quota problem (issue 12)."""
    error, stats = unreachable(f"http://127.0.0.1:{full_backlog}")
    assert str(error).startswith("cannot reach 127.0.0.1: ")
    assert stats.requests == 0


def test_tls_failure_is_network():
    with TiingoStandIn(lambda _a: json_reply([])) as plain_http:
        error, stats = unreachable(plain_http.url.replace("http://", "https://"))
    assert str(error).startswith("cannot reach 127.0.0.1: [SSL")
    assert stats.requests == 0


def test_dns_failure_names_the_host():
    def resolve_nothing(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno -2] Name or service not known", request=request)

    error, _ = unreachable("https://api.tiingo.com", transport=httpx.MockTransport(resolve_nothing))
    assert str(error) == "cannot reach api.tiingo.com: [Errno -2] Name or service not known"


def test_a_reset_after_the_request_was_sent_counts_as_a_request(simulator):
    simulator.inject("reset", 10)
    limiter = Limiter(10)
    error, stats = unreachable(simulator.base_url, limiter.limiter)
    assert str(error).startswith("cannot reach 127.0.0.1: connection lost")
    assert stats.requests == simulator.count() == DEFAULT_NETWORK_RETRIES + 1  # Tiingo may have counted them
    assert sum(limiter.limiter.try_acquire() for _ in range(10)) == 10 - stats.requests


def test_a_slow_answer_stays_a_timeout(simulator):
    simulator.slow_seconds = 1.0
    simulator.inject("timeout", 10)
    with (
        TiingoClient(
            TEST_TOKEN, base_url=simulator.base_url, timeout=0.25, max_retries=1, sleep=lambda s: None
        ) as c,
        pytest.raises(TransportError) as caught,
    ):
        c.get_latest("AAPL")
    assert caught.value.kind == "timeout"


def test_the_scraper_stops_the_run_and_skips_the_rest(closed_port, bucket, s3_client, capsys):
    client = TiingoClient(TEST_TOKEN, base_url=f"http://127.0.0.1:{closed_port}", sleep=lambda s: None)
    runtime = scraper.ScraperRuntime(S3ObjectStore(bucket, s3_client), client, clock=lambda: EVENING)
    runtime.settings = scraper.ScraperSettings(concurrency=1)
    with client:
        summary = scraper.handle(
            {"tickers": ["AAPL", "MSFT", "SPY"], "start_date": "2024-06-03", "end_date": "2024-06-14"},
            runtime,
        )
    assert summary["failed"]["AAPL"] == {
        "error": "network",
        "message": "cannot reach 127.0.0.1: [Errno 111] Connection refused",
        "requests": 0,
    }
    assert {summary["failed"][t]["error"] for t in ("MSFT", "SPY")} == {"skipped"}
    assert "network" in summary["failed"]["MSFT"]["message"]
    assert summary["requests"] == 0
    assert TEST_TOKEN not in capsys.readouterr().out


def test_the_network_coming_back_mid_run_is_just_a_retry():
    """A blip shorter than the short retry costs nothing: the answer after it is used."""
    answers = iter([None, json_reply([bar(date(2024, 6, 14))])])

    def flaky(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        if answer is None:
            raise httpx.ConnectError("[Errno 101] Network is unreachable", request=request)
        status, headers, body = answer
        return httpx.Response(status, headers=headers, content=body)

    stats = RequestStats()
    with TiingoClient(TEST_TOKEN, transport=httpx.MockTransport(flaky), sleep=lambda s: None) as c:
        assert reply_table(c.get_latest("AAPL", stats=stats)).num_rows == 1
    assert (stats.requests, stats.retries) == (1, 1)
