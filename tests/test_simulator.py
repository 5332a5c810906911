"""The Tiingo simulator over real loopback HTTP: data invariants, auth, quota, faults, lifecycle, CLI."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from stockpipe.calendar import is_trading_day, trading_days
from stockpipe_local.simulator import (
    DEFAULT_TICKERS,
    HOURLY_LIMIT_DETAIL,
    ROW_KEYS,
    Faults,
    TiingoSimulator,
    main,
)
from tests.conftest import TEST_TOKEN

ROOT = Path(__file__).resolve().parents[1]
AUTH = {"Authorization": f"Token {TEST_TOKEN}"}


@pytest.fixture
def http(simulator: TiingoSimulator) -> httpx.Client:
    with httpx.Client(base_url=simulator.base_url, headers=AUTH, timeout=10) as client:
        yield client


def prices(http: httpx.Client, ticker: str, start: str, end: str | None = None) -> httpx.Response:
    params = {"startDate": start} if end is None else {"startDate": start, "endDate": end}
    return http.get(f"/tiingo/daily/{ticker}/prices", params=params)


def test_ranged_prices_are_trading_days_in_tiingo_shape(
    http: httpx.Client, simulator: TiingoSimulator
) -> None:
    response = prices(http, "aapl", "2023-12-20", "2024-01-05")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    rows = response.json()
    days = [date.fromisoformat(r["date"][:10]) for r in rows]
    assert days == list(trading_days(date(2023, 12, 20), date(2024, 1, 5)))
    assert date(2023, 12, 25) not in days
    assert date(2024, 1, 1) not in days
    assert all(tuple(r) == ROW_KEYS for r in rows)
    assert rows[0]["date"] == "2023-12-20T00:00:00.000Z"
    assert rows == simulator.history("AAPL", date(2023, 12, 20), date(2024, 1, 5))


def test_ohlc_and_volume_invariants_over_a_long_history(simulator: TiingoSimulator) -> None:
    rows = simulator.history("AAPL", date(1970, 1, 1), date(2024, 6, 14))
    assert rows[0]["date"].startswith("1980-12-12")
    assert rows[-1]["date"].startswith("2024-06-14")
    for r in rows:
        assert is_trading_day(date.fromisoformat(r["date"][:10]))
        assert r["high"] >= max(r["open"], r["close"]) >= min(r["open"], r["close"]) >= r["low"] > 0
        assert (
            r["adjHigh"]
            >= max(r["adjOpen"], r["adjClose"])
            >= min(r["adjOpen"], r["adjClose"])
            >= r["adjLow"]
        )
        assert r["adjLow"] > 0
        assert isinstance(r["volume"], int)
        assert r["volume"] > 0
    assert len({r["date"] for r in rows}) == len(rows)
    splits = [r for r in rows if r["splitFactor"] != 1.0]
    dividends = [r for r in rows if r["divCash"] != 0.0]
    assert splits
    assert dividends
    # Deterministic: same seed -> same data; another seed -> different data.
    again = TiingoSimulator(today=date(2024, 6, 14)).history("AAPL", date(2024, 6, 3), date(2024, 6, 14))
    other = TiingoSimulator(today=date(2024, 6, 14), seed=1).history(
        "AAPL", date(2024, 6, 3), date(2024, 6, 14)
    )
    assert again == rows[-10:]
    assert other != again


def test_back_adjustment_matches_events(simulator: TiingoSimulator) -> None:
    rows = simulator.history("AAPL", date(1980, 1, 1), date(2024, 6, 14))
    # The last row is never adjusted; adjVolume * adjClose ~ volume * close (splits) on any day.
    assert rows[-1]["adjClose"] == rows[-1]["close"]
    # Rebuild the multiplier from the events the rows themselves report (standard back-adjustment).
    factor = 1.0
    expected: list[float] = []
    for i in range(len(rows) - 1, -1, -1):
        expected.append(factor)
        r = rows[i]
        if r["splitFactor"] != 1.0 or r["divCash"]:
            prev_close = rows[i - 1]["close"] / r["splitFactor"]
            factor *= (1.0 / r["splitFactor"]) * (1.0 - r["divCash"] / prev_close)
    expected.reverse()
    for r, m in zip(rows, expected, strict=True):
        assert math.isclose(r["adjClose"], r["close"] * m, rel_tol=1e-9)


def test_add_event_recomputes_past_adjusted_values(simulator: TiingoSimulator, http: httpx.Client) -> None:
    before = prices(http, "MSFT", "2024-06-03", "2024-06-14").json()
    simulator.add_event("MSFT", date(2024, 6, 12), div_cash=0.75)
    after = prices(http, "MSFT", "2024-06-03", "2024-06-14").json()
    by_day = {r["date"]: r for r in after}
    assert by_day["2024-06-12T00:00:00.000Z"]["divCash"] == 0.75
    for old, new in zip(before, after, strict=True):
        assert (old["open"], old["close"], old["volume"]) == (new["open"], new["close"], new["volume"])
        if old["date"] < "2024-06-12":
            assert new["adjClose"] < old["adjClose"]
        else:
            assert new["adjClose"] == old["adjClose"]
    simulator.add_event("MSFT", date(2024, 6, 13), split_factor=2.0)
    split = simulator.history("MSFT", date(2024, 6, 12), date(2024, 6, 13))
    assert split[1]["splitFactor"] == 2.0
    assert math.isclose(split[0]["adjVolume"], split[0]["volume"] * 2.0)
    with pytest.raises(ValueError, match="trading day"):
        simulator.add_event("MSFT", date(2024, 6, 15), div_cash=1.0)


def test_latest_bar_empty_ranges_and_start_only(http: httpx.Client, simulator: TiingoSimulator) -> None:
    latest = http.get("/tiingo/daily/AAPL/prices").json()
    assert len(latest) == 1
    assert list(latest[0]) == sorted(latest[0])
    assert latest[0]["date"] == "2024-06-14T00:00:00+00:00"
    ranged = simulator.history("AAPL", date(2024, 6, 14), date(2024, 6, 14))[0]
    assert {k: v for k, v in latest[0].items() if k != "date"} == {
        k: v for k, v in ranged.items() if k != "date"
    }
    assert prices(http, "AAPL", "2024-06-15", "2024-06-16").json() == []  # a weekend
    assert prices(http, "AAPL", "2030-01-01", "2030-01-31").json() == []  # the future
    assert prices(http, "META", "2000-01-01", "2001-01-01").json() == []  # before listing
    start_only = prices(http, "AAPL", "2024-06-10").json()
    assert [r["date"][:10] for r in start_only][-1] == "2024-06-14"
    assert len(start_only) == 5
    simulator.today = date(2024, 6, 17)
    assert prices(http, "AAPL", "2024-06-10").json()[-1]["date"].startswith("2024-06-17")


def test_symbols_metadata_and_generated_tickers(http: httpx.Client, simulator: TiingoSimulator) -> None:
    assert prices(http, "BRK-B", "2024-06-14", "2024-06-14").status_code == 200
    missing = prices(http, "BRK.B", "2024-06-14", "2024-06-14")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Error: Ticker 'BRK.B' not found"}
    assert http.get("/tiingo/daily/XYZQ/prices").json() == {"detail": "Error: Ticker 'XYZQ' not found"}
    meta = http.get("/tiingo/daily/googl").json()
    assert set(meta) == {"ticker", "name", "exchangeCode", "description", "startDate", "endDate"}
    assert (meta["startDate"], meta["endDate"]) == ("2004-08-19", "2024-06-14")
    assert simulator.first_date("GOOGL") == date(2004, 8, 19) == DEFAULT_TICKERS["GOOGL"]
    gen = prices(http, "sim00042", "1999-12-01", "2000-01-05").json()
    assert [r["date"][:10] for r in gen] == ["2000-01-03", "2000-01-04", "2000-01-05"]
    assert simulator.first_date("SIM00042") == date(2000, 1, 3)
    with pytest.raises(KeyError):
        simulator.first_date("NOPE")


def test_custom_ticker_set_and_no_generated() -> None:
    with (
        TiingoSimulator(
            token="t", today=date(2024, 6, 14), tickers={"ABC": date(2024, 6, 10)}, generated_prefix=None
        ) as sim,
        httpx.Client(base_url=sim.base_url, headers={"Authorization": "Token t"}) as client,
    ):
        assert len(prices(client, "ABC", "2024-01-01", "2024-06-14").json()) == 5
        assert prices(client, "AAPL", "2024-01-01", "2024-06-14").status_code == 404
        assert prices(client, "SIM1", "2024-01-01", "2024-06-14").status_code == 404


def test_auth(simulator: TiingoSimulator) -> None:
    url = f"{simulator.base_url}/tiingo/daily/AAPL/prices"
    missing = httpx.get(url)
    assert (missing.status_code, missing.json()) == (403, {"detail": "Please supply a token"})
    wrong = httpx.get(url, headers={"Authorization": "Token nope"})
    assert (wrong.status_code, wrong.json()) == (401, {"detail": "Invalid token."})
    assert httpx.get(url, params={"token": TEST_TOKEN}).status_code == 200
    assert all(TEST_TOKEN not in json.dumps(r.params) for r in simulator.requests)
    assert simulator.count(status=401) == 1
    assert simulator.count(status=403) == 1


def test_quota_429_after_n_and_counts() -> None:
    with (
        # A clock-aligned window of ~31 years: no boundary can fall inside the test.
        TiingoSimulator(token=TEST_TOKEN, today=date(2024, 6, 14), quota=3, quota_window=1e9) as sim,
        httpx.Client(base_url=sim.base_url, headers=AUTH) as client,
    ):
        statuses = [client.get("/tiingo/daily/AAPL").status_code for _ in range(5)]
        body = client.get("/tiingo/daily/AAPL/prices").json()
    assert statuses == [200, 200, 200, 429, 429]
    assert body == {"detail": HOURLY_LIMIT_DETAIL}
    assert sim.count(status=429) == 3
    assert sim.count(kind="metadata") == 5
    assert sim.requests[-1].status == 429


def test_quota_window_resets() -> None:
    with (
        TiingoSimulator(token="t", quota=1, quota_window=0.2) as sim,
        httpx.Client(base_url=sim.base_url, headers={"Authorization": "Token t"}) as client,
    ):
        first = client.get("/tiingo/daily/AAPL").status_code
        window = math.floor(time.time() / 0.2)
        while math.floor(time.time() / 0.2) == window:
            time.sleep(0.01)
        after = client.get("/tiingo/daily/AAPL").status_code
        second = client.get("/tiingo/daily/AAPL").status_code
    assert first == 200
    assert after == 200
    assert second == 429 or math.floor(time.time() / 0.2) != window + 1


def test_429_body_and_retry_after(http: httpx.Client, simulator: TiingoSimulator) -> None:
    simulator.inject("429")
    simulator.inject("429", retry_after=7)
    first = http.get("/tiingo/daily/AAPL/prices")
    assert (first.status_code, first.json()) == (429, {"detail": HOURLY_LIMIT_DETAIL})
    assert "retry-after" not in first.headers
    second = http.get("/tiingo/daily/AAPL/prices")
    assert second.headers["retry-after"] == "7"
    assert http.get("/tiingo/daily/AAPL/prices").status_code == 200


@pytest.mark.parametrize(
    ("fault", "status", "check"),
    [
        ("monthly_limit", 200, lambda r: r.text.startswith("You have run over your 500 symbol look up")),
        ("bandwidth", 200, lambda r: "monthly bandwidth allocation" in r.text),
        ("500", 500, lambda r: True),
        ("502", 502, lambda r: "Bad Gateway" in r.text),
        ("503", 503, lambda r: True),
        ("html", 200, lambda r: r.headers["content-type"] == "text/html" and "<html>" in r.text),
        ("not_json_shape", 200, lambda r: isinstance(r.json(), dict)),
        ("empty", 200, lambda r: r.json() == []),
        ("401", 401, lambda r: r.json() == {"detail": "Invalid token."}),
        ("403", 403, lambda r: r.json() == {"detail": "Please supply a token"}),
        ("float_volume", 200, lambda r: all(isinstance(x["volume"], float) for x in r.json())),
    ],
)
def test_each_fault_is_observable(
    http: httpx.Client, simulator: TiingoSimulator, fault: str, status: int, check
) -> None:
    simulator.inject(fault, ticker="msft")
    assert prices(http, "AAPL", "2024-06-10", "2024-06-14").status_code == 200  # other tickers unaffected
    response = prices(http, "MSFT", "2024-06-10", "2024-06-14")
    assert response.status_code == status
    assert check(response)
    normal = prices(http, "MSFT", "2024-06-10", "2024-06-14")
    assert normal.status_code == 200
    assert len(normal.json()) == 5
    assert isinstance(normal.json()[0]["volume"], int)


def test_truncated_fault(http: httpx.Client, simulator: TiingoSimulator) -> None:
    simulator.inject("truncated")
    response = prices(http, "AAPL", "2024-06-10", "2024-06-14")
    assert response.status_code == 200
    assert response.text.startswith('[{"date":"2024-06-10')
    with pytest.raises(ValueError, match=r"Expecting|Unterminated"):
        json.loads(response.text)


def test_fifo_and_count(http: httpx.Client, simulator: TiingoSimulator) -> None:
    simulator.inject("500", 2)
    simulator.inject("503")
    statuses = [http.get("/tiingo/daily/AAPL").status_code for _ in range(4)]
    assert statuses == [500, 500, 503, 200]
    assert simulator.count(ticker="aapl", kind="metadata") == 4
    with pytest.raises(ValueError, match="unknown fault"):
        simulator.inject("nope")


def test_reset_and_timeout_faults(simulator: TiingoSimulator) -> None:
    simulator.slow_seconds = 1.0
    simulator.inject("reset")
    simulator.inject("timeout")
    with httpx.Client(base_url=simulator.base_url, headers=AUTH, timeout=0.2) as client:
        with pytest.raises(httpx.TransportError):
            client.get("/tiingo/daily/AAPL")
        with pytest.raises(httpx.TimeoutException):
            client.get("/tiingo/daily/AAPL")
        assert client.get("/tiingo/daily/AAPL").status_code == 200  # the server survived both
    assert simulator.count(status=0) == 1


def test_latency_and_error_rate_are_live_settings(http: httpx.Client, simulator: TiingoSimulator) -> None:
    simulator.faults.error_rate = 1.0
    assert http.get("/tiingo/daily/AAPL").status_code == 500
    simulator.faults.error_rate = 0.0
    simulator.faults.latency = 0.05
    assert http.get("/tiingo/daily/AAPL").status_code == 200
    # Seeded: the same seed gives the same sequence of 500s.
    outcomes = []
    for _ in range(2):
        with (
            TiingoSimulator(token="t", seed=7, faults=Faults(error_rate=0.5)) as sim,
            httpx.Client(base_url=sim.base_url, headers={"Authorization": "Token t"}) as client,
        ):
            outcomes.append([client.get("/tiingo/daily/AAPL").status_code for _ in range(12)])
    assert outcomes[0] == outcomes[1]
    assert {200, 500} == set(outcomes[0])


def test_reset_stats_and_request_records(http: httpx.Client, simulator: TiingoSimulator) -> None:
    prices(http, "AAPL", "2024-06-10", "2024-06-14")
    http.get("/tiingo/daily/AAPL/prices")
    http.get("/tiingo/daily/AAPL")
    record = simulator.requests[0]
    assert (record.method, record.path, record.ticker, record.status) == (
        "GET",
        "/tiingo/daily/AAPL/prices",
        "AAPL",
        200,
    )
    assert record.params == {"startDate": "2024-06-10", "endDate": "2024-06-14"}
    assert [simulator.count(kind=k) for k in ("prices", "latest", "metadata")] == [1, 1, 1]
    simulator.reset_stats()
    assert simulator.count() == 0


def test_stop_frees_the_port_despite_open_and_dropped_connections() -> None:
    sim = TiingoSimulator(token="t").start()
    port = sim.port
    idle = httpx.Client(base_url=sim.base_url, headers={"Authorization": "Token t"})
    assert idle.get("/tiingo/daily/AAPL").status_code == 200  # leaves a keep-alive connection open
    # A client that sends half a request and disconnects must not kill the server thread.
    with socket.create_connection(("127.0.0.1", port)) as raw:
        raw.sendall(b"GET /tiingo/daily/AAPL HTTP/1.1\r\nHost: x\r\n")
    assert idle.get("/tiingo/daily/AAPL").status_code == 200
    sim.inject("timeout")
    sim.slow_seconds = 30.0
    slow = httpx.Client(base_url=sim.base_url, headers={"Authorization": "Token t"}, timeout=0.1)
    with slow, pytest.raises(httpx.TimeoutException):
        slow.get("/tiingo/daily/AAPL")
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 5  # a stalled handler does not hold stop() for 30 s
    idle.close()
    with TiingoSimulator(token="t", port=port) as again:  # the port is free for a new server
        assert again.base_url.endswith(f":{port}")


def test_cli_main_serves_and_stops() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stockpipe_local.simulator",
            "--port",
            "0",
            "--token",
            "cli-t",
            "--today",
            "2024-06-14",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'lambdas'}", "PATH": "/usr/bin:/bin"},
    )
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        response = httpx.get(f"{base_url}/tiingo/daily/AAPL/prices", headers={"Authorization": "Token cli-t"})
        assert response.status_code == 200
        assert response.json()[0]["date"].startswith("2024-06-14")
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_main_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        main(["--today", "not-a-date"])


def test_history_is_cheap_per_row_not_per_history(simulator: TiingoSimulator) -> None:
    """O(rows requested): a one-day request on a 44-year ticker does not build the whole history."""
    simulator.history("AAPL", date(2024, 6, 14), date(2024, 6, 14))  # warm the event cache
    calls = 0
    import stockpipe_local.simulator.market as market_module

    original = market_module._raw_bar

    def counting(*args, **kwargs):
        nonlocal calls
        calls += 1
        return original(*args, **kwargs)

    market_module._raw_bar = counting
    try:
        simulator.history("AAPL", date(2024, 6, 10), date(2024, 6, 14))
    finally:
        market_module._raw_bar = original
    assert calls == 5
    assert simulator.history("AAPL", date(2024, 6, 14), date(2024, 6, 14) + timedelta(days=3))[-1][
        "date"
    ].startswith("2024-06-14")
