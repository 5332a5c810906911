"""The Tiingo client's price and metadata requests against the simulator: exact values, screened
replies, ticker normalisation, concurrent use."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest

from stockpipe.errors import (
    BadPayloadError,
)
from stockpipe.prices import PRICE_SCHEMA, reply_table
from stockpipe.tiingo import TickerMetadata, TiingoClient
from stockpipe_local.simulator import TiingoSimulator
from tests.conftest import TEST_TOKEN
from tests.fakes import SleepRecorder, expected_table
from tests.threads import run_concurrently
from tests.tiingo_standin import TiingoStandIn


def test_prices_round_trip_exactly(client: TiingoClient, simulator: TiingoSimulator) -> None:
    start, end = date(2019, 1, 1), date(2024, 6, 14)
    reply = client.get_prices("AAPL", start, end)
    table = reply_table(reply)
    assert (reply.rejected, reply.rejected_rows, reply.out_of_range_rows) == ([], 0, 0)
    assert table.schema == PRICE_SCHEMA
    rows = simulator.history("AAPL", start, end)
    assert table.num_rows == len(rows) > 1000
    assert table.to_pydict() == expected_table(rows)  # floats compared exactly, no tolerance
    assert any(r["divCash"] for r in rows)  # the range includes corporate actions


def test_latest_bar(client: TiingoClient, simulator: TiingoSimulator) -> None:
    table = reply_table(client.get_latest("aapl"))
    assert table.num_rows == 1
    assert table.to_pydict() == expected_table(
        simulator.history("AAPL", date(2024, 6, 14), date(2024, 6, 14))
    )
    assert simulator.count(kind="latest") == 1


def test_float_volumes_are_read_as_integers(client: TiingoClient, simulator: TiingoSimulator) -> None:
    simulator.inject("float_volume")
    table = reply_table(client.get_prices("MSFT", date(2024, 6, 10), date(2024, 6, 14)))
    rows = simulator.history("MSFT", date(2024, 6, 10), date(2024, 6, 14))
    assert table.column("volume").type == pa.int64()
    assert table.column("volume").to_pylist() == [r["volume"] for r in rows]


def test_empty_range_is_an_empty_table(client: TiingoClient, simulator: TiingoSimulator) -> None:
    table = reply_table(client.get_prices("AAPL", date(2024, 6, 15), date(2024, 6, 16)))
    assert table.num_rows == 0
    assert table.schema == PRICE_SCHEMA
    assert simulator.count() == 1
    simulator.inject("empty")
    assert reply_table(client.get_latest("AAPL")).num_rows == 0


def test_ticker_normalisation(client: TiingoClient, simulator: TiingoSimulator) -> None:
    assert reply_table(client.get_prices(" brk.b ", date(2024, 6, 14), date(2024, 6, 14))).num_rows == 1
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


def test_invalid_rows_are_quarantined_not_returned(sleeps: SleepRecorder) -> None:
    body = (
        b'[{"date": "yesterday", "close": 1.0}, {"date": "2024-06-11T00:00:00.000Z", "close": NaN},'
        b' {"date": "2024-06-12T00:00:00+00:00", "close": 2.0}, {"date": "2024-06-20", "close": 3.0}]'
    )
    server = TiingoStandIn.scripted([(200, {}, body)])
    with server, TiingoClient(TEST_TOKEN, base_url=server.url, sleep=sleeps) as c:
        reply = c.get_prices("AAPL", date(2024, 6, 10), date(2024, 6, 14))
    assert reply_table(reply).column("date").to_pylist() == [date(2024, 6, 12)]
    assert reply.rejected == [
        {
            "date": None,
            "reason": "date is not a Tiingo date (YYYY-MM-DD, optionally T00:00:00[.000][Z|+00:00])",
        },
        {"date": "2024-06-11", "reason": "close is not finite (NaN or Infinity)"},
    ]
    assert (reply.rejected_rows, reply.out_of_range_rows) == (2, 1)


def test_concurrent_use_from_16_threads(client: TiingoClient, simulator: TiingoSimulator) -> None:
    tickers = [f"SIM{i:03d}" for i in range(48)]
    for ticker in tickers[::6]:
        simulator.inject("500", ticker=ticker)  # 8 tickers each fail once
    tables: dict[str, object] = {}

    def fetch(share: list[str]) -> None:
        for ticker in share:
            tables[ticker] = reply_table(client.get_prices(ticker, date(2024, 1, 1), date(2024, 6, 14)))

    run_concurrently([lambda share=tickers[i::16]: fetch(share) for i in range(16)])
    for ticker in tickers:
        assert tables[ticker].to_pydict() == expected_table(
            simulator.history(ticker, date(2024, 1, 1), date(2024, 6, 14))
        )
    assert client.stats.requests == 48 + 8
    assert client.stats.retries == 8
    assert simulator.count() == 48 + 8
