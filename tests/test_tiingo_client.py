"""TiingoClient over real loopback HTTP against the simulator (no mocks; sleeps are recorded, not slept)."""

from __future__ import annotations

import json
import logging
import threading
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime

import pyarrow as pa
import pytest

from stockpipe.errors import (
    AuthenticationError,
    BadPayloadError,
    MonthlyLimitError,
    NetworkError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TiingoError,
    TransportError,
)
from stockpipe.prices import PRICE_SCHEMA, TIINGO_KEYS
from stockpipe.ratelimit import RateLimiter
from stockpipe.tiingo import DEFAULT_NETWORK_RETRIES, RequestStats, TickerMetadata, TiingoClient
from stockpipe_local.simulator import HOURLY_LIMIT_DETAIL, MONTHLY_SYMBOL_TEXT, TiingoSimulator
from tests.conftest import TEST_TOKEN
from tests.tiingo_standin import TiingoStandIn

MAX_RETRIES = 3


class SleepRecorder:
    def __init__(self) -> None:
        self.calls: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self._lock:
            self.calls.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def client(simulator: TiingoSimulator, sleeps: SleepRecorder) -> Iterator[TiingoClient]:
    with TiingoClient(
        TEST_TOKEN, base_url=simulator.base_url, timeout=2.0, max_retries=MAX_RETRIES, sleep=sleeps
    ) as c:
        yield c


def expected_table(rows: list[dict]) -> dict[str, list]:
    out: dict[str, list] = {"date": [date.fromisoformat(r["date"][:10]) for r in rows]}
    for name, key in TIINGO_KEYS.items():
        out[name] = [r[key] for r in rows]
    return out


def test_prices_round_trip_exactly(client: TiingoClient, simulator: TiingoSimulator) -> None:
    start, end = date(2019, 1, 1), date(2024, 6, 14)
    reply = client.get_prices("AAPL", start, end)
    table = reply.table
    assert (reply.rejected, reply.rejected_rows, reply.out_of_range_rows) == ([], 0, 0)
    assert table.schema == PRICE_SCHEMA
    rows = simulator.history("AAPL", start, end)
    assert table.num_rows == len(rows) > 1000
    assert table.to_pydict() == expected_table(rows)  # floats compared exactly, no tolerance
    assert any(r["divCash"] for r in rows)  # the range includes corporate actions


def test_latest_bar(client: TiingoClient, simulator: TiingoSimulator) -> None:
    table = client.get_latest("aapl").table
    assert table.num_rows == 1
    assert table.to_pydict() == expected_table(
        simulator.history("AAPL", date(2024, 6, 14), date(2024, 6, 14))
    )
    assert simulator.count(kind="latest") == 1


def test_float_volumes_are_read_as_integers(client: TiingoClient, simulator: TiingoSimulator) -> None:
    simulator.inject("float_volume")
    table = client.get_prices("MSFT", date(2024, 6, 10), date(2024, 6, 14)).table
    rows = simulator.history("MSFT", date(2024, 6, 10), date(2024, 6, 14))
    assert table.column("volume").type == pa.int64()
    assert table.column("volume").to_pylist() == [r["volume"] for r in rows]


def test_empty_range_is_an_empty_table(client: TiingoClient, simulator: TiingoSimulator) -> None:
    table = client.get_prices("AAPL", date(2024, 6, 15), date(2024, 6, 16)).table
    assert table.num_rows == 0
    assert table.schema == PRICE_SCHEMA
    assert simulator.count() == 1
    simulator.inject("empty")
    assert client.get_latest("AAPL").table.num_rows == 0


def test_ticker_normalisation(client: TiingoClient, simulator: TiingoSimulator) -> None:
    assert client.get_prices(" brk.b ", date(2024, 6, 14), date(2024, 6, 14)).table.num_rows == 1
    assert simulator.requests[-1].path == "/tiingo/daily/BRK-B/prices"
    for bad in ("", "AA PL", "AAPL/../x", "A" * 21, "ÄAPL", None, 42):
        with pytest.raises(ValueError, match="ticker"):
            client.get_prices(bad, date(2024, 6, 14), date(2024, 6, 14))  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="ticker"):
            client.get_metadata(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="after end"):
        client.get_prices("AAPL", date(2024, 6, 14), date(2024, 6, 13))
    assert simulator.count() == 1  # only the BRK-B request reached the server


def test_metadata(client: TiingoClient, simulator: TiingoSimulator) -> None:
    meta = client.get_metadata("googl")
    assert meta == TickerMetadata("GOOGL", "Alphabet Inc - Class A", date(2004, 8, 19), date(2024, 6, 14))
    simulator.today = date(2000, 1, 1)
    assert client.get_metadata("META") == TickerMetadata("META", "Meta Platforms Inc", None, None)
    for fault, message in (
        ("not_json_shape", "without startDate"),
        ("empty", "expected a JSON object, got list"),
    ):
        simulator.inject(fault)
        with pytest.raises(BadPayloadError, match=message):
            client.get_metadata("AAPL")


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


def test_invalid_rows_are_quarantined_not_returned(sleeps: SleepRecorder) -> None:
    body = (
        b'[{"date": "yesterday", "close": 1.0}, {"date": "2024-06-11T00:00:00.000Z", "close": NaN},'
        b' {"date": "2024-06-12T00:00:00+00:00", "close": 2.0}, {"date": "2024-06-20", "close": 3.0}]'
    )
    server = TiingoStandIn.scripted([(200, {}, body)])
    with server, TiingoClient(TEST_TOKEN, base_url=server.url, sleep=sleeps) as c:
        reply = c.get_prices("AAPL", date(2024, 6, 10), date(2024, 6, 14))
    assert reply.table.column("date").to_pylist() == [date(2024, 6, 12)]
    assert reply.rejected == [
        {
            "date": None,
            "reason": "date is not a Tiingo date (YYYY-MM-DD, optionally T00:00:00[.000][Z|+00:00])",
        },
        {"date": "2024-06-11", "reason": "close is not finite (NaN or Infinity)"},
    ]
    assert (reply.rejected_rows, reply.out_of_range_rows) == (2, 1)


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
        table = c.get_prices("AAPL", date(2024, 6, 10), date(2024, 6, 14), stats=stats).table
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
    assert client.get_latest("AAPL").table.num_rows == 1
    assert sleeps.calls == [7.0, 2.5]
    assert simulator.count(status=429) == 2


def test_retry_after_http_date(sleeps: SleepRecorder) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    body = json.dumps({"detail": HOURLY_LIMIT_DETAIL}).encode()
    server = TiingoStandIn.scripted([(429, {"Retry-After": when}, body), (200, {}, b"[]")])
    with server, TiingoClient(TEST_TOKEN, base_url=server.url, sleep=sleeps) as c:
        assert c.get_latest("AAPL").table.num_rows == 0
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


def test_concurrent_use_from_16_threads(client: TiingoClient, simulator: TiingoSimulator) -> None:
    tickers = [f"SIM{i:03d}" for i in range(48)]
    for ticker in tickers[::6]:
        simulator.inject("500", ticker=ticker)  # 8 tickers each fail once
    with ThreadPoolExecutor(16) as pool:
        tables = list(
            pool.map(lambda t: client.get_prices(t, date(2024, 1, 1), date(2024, 6, 14)).table, tickers)
        )
    for ticker, table in zip(tickers, tables, strict=True):
        assert table.to_pydict() == expected_table(
            simulator.history(ticker, date(2024, 1, 1), date(2024, 6, 14))
        )
    assert client.stats.requests == 48 + 8
    assert client.stats.retries == 8
    assert simulator.count() == 48 + 8


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo += [item.__cause__, item.__context__]


def test_token_never_leaks(
    simulator: TiingoSimulator, sleeps: SleepRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    stockpipe_logger = logging.getLogger("stockpipe")
    stockpipe_logger.addHandler(caplog.handler)  # the JSON logger does not propagate to root
    old_level = stockpipe_logger.level
    stockpipe_logger.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)  # restored after the test
    simulator.slow_seconds = 1.0
    errors: list[BaseException] = []
    try:
        with TiingoClient(
            TEST_TOKEN, base_url=simulator.base_url, timeout=0.25, max_retries=1, sleep=sleeps
        ) as c:
            assert TEST_TOKEN not in repr(c)
            assert TEST_TOKEN not in str(vars(c).get("stats"))
            for fault in (
                "401",
                "403",
                "500",
                "reset",
                "timeout",
                "html",
                "truncated",
                "monthly_limit",
                "429",
            ):
                simulator.inject(fault, 2)
                try:
                    c.get_prices("AAPL", date(2024, 6, 10), date(2024, 6, 14))
                except TiingoError as exc:
                    errors.append(exc)
            for call in (lambda: c.get_metadata("NOPE"), lambda: c.get_latest("bad ticker")):
                try:
                    call()
                except (TiingoError, ValueError) as exc:
                    errors.append(exc)
        with TiingoClient(
            TEST_TOKEN, base_url="http://127.0.0.1:9", timeout=0.25, max_retries=0, sleep=sleeps
        ) as c:
            try:
                c.get_latest("AAPL")
            except NetworkError as exc:
                errors.append(exc)
    finally:
        stockpipe_logger.removeHandler(caplog.handler)
        stockpipe_logger.setLevel(old_level)
    assert len(errors) == 12
    for exc in errors:
        for item in _chain(exc):
            assert TEST_TOKEN not in str(item)
            assert TEST_TOKEN not in repr(item)
            assert TEST_TOKEN not in repr(vars(item))
        assert TEST_TOKEN not in "".join(traceback.format_exception(exc))
        assert exc.__context__ is None or not hasattr(exc.__context__, "request")
    assert caplog.records  # httpx / httpcore / our retry logs were captured
    assert any(r.name.startswith("httpx") for r in caplog.records)
    assert any(r.name == "stockpipe.tiingo" for r in caplog.records)
    for record in caplog.records:
        assert TEST_TOKEN not in record.getMessage()
        assert TEST_TOKEN not in repr(vars(record))
    assert TEST_TOKEN not in caplog.text


def test_constructor_validates_the_token_without_echoing_it() -> None:
    for bad in ("", "   ", "tok en", "tok\nen"):
        with pytest.raises(ValueError, match="token") as caught:
            TiingoClient(bad)
        assert bad.strip() not in str(caught.value) or not bad.strip()
