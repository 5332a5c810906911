"""Hostile Tiingo replies through the real handler: a loopback HTTP stand-in answers, moto S3 stores.

Policy under test (stockpipe.validation): invalid rows are quarantined (never stored, listed under
``rejected`` in the ticker's success entry), rows outside the requested range are counted and dropped,
a body that is not a list of objects is ``bad_payload``. Includes issue 9's regression cases and a
property test over arbitrary replies.
"""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stockpipe import scraper
from stockpipe.objectstore import S3ObjectStore
from stockpipe.prices import rows_to_table
from stockpipe.pricestore import PriceStore
from stockpipe.tiingo import TiingoClient
from tests.conftest import TEST_TOKEN
from tests.tiingo_standin import DROP, Replies, TiingoStandIn, bar, json_reply, weekdays

EVENING = datetime(2024, 6, 14, 23, 0, tzinfo=UTC)  # Friday, 19:00 in New York
TODAY = date(2024, 6, 14)
KEYS = ("open", "high", "low", "close", "volume", "adjOpen", "adjHigh", "adjLow", "adjClose", "adjVolume")


@pytest.fixture
def replies():
    return Replies()


@pytest.fixture
def standin(replies):
    with TiingoStandIn(replies) as server:
        yield server


@pytest.fixture
def runtime(standin, bucket, s3_client):
    client = TiingoClient(TEST_TOKEN, base_url=standin.url, sleep=lambda s: None, max_retries=1)
    rt = scraper.ScraperRuntime(S3ObjectStore(bucket, s3_client), client, clock=lambda: EVENING)
    yield rt
    client.close()


def event(tickers, start="2024-06-03", end="2024-06-14"):
    return {"tickers": tickers, "start_date": start, "end_date": end}


def stored(runtime, ticker):
    return PriceStore(runtime.store).read_ticker(ticker)


HOSTILE = {
    "close NaN": ('"close": NaN', "close is not finite (NaN or Infinity)"),
    "close Infinity": ('"close": Infinity', "close is not finite (NaN or Infinity)"),
    "close null": ('"close": null', "close is missing"),
    "only a date": (None, "close is missing"),
    "negative price": ('"close": 101.0, "open": -5.0', "open must be >= 0"),
    "negative volume": ('"close": 101.0, "volume": -10', "volume must be >= 0"),
    "splitFactor 0": ('"close": 101.0, "splitFactor": 0', "splitFactor must be > 0"),
    "high below low": ('"close": 101.0, "high": 90.0, "low": 95.0', "high is below low"),
    "token as a price": (f'"close": "Token {TEST_TOKEN}"', "close is not a number"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_a_bad_row_never_replaces_a_stored_value(case, runtime, replies, capsys):
    """Issue 9 regression: a reply row for a stored date with NaN/Infinity/null/only a date, or a
    negative price or volume, splitFactor 0, high < low, was stored as success over good data."""
    days = weekdays(date(2024, 6, 3), date(2024, 6, 7))
    replies.by_ticker["AAPL"] = json_reply([bar(d) for d in days])
    scraper.handle(event(["AAPL"], end="2024-06-07"), runtime)
    before = stored(runtime, "AAPL")

    fields, reason = HOSTILE[case]
    bad = '{"date": "2024-06-05T00:00:00.000Z"' + (f", {fields}" if fields else "") + "}"
    good = json.dumps(bar(date(2024, 6, 10), close=50.0))
    replies.by_ticker["AAPL"] = json_reply(f"[{bad}, {good}]")
    summary = scraper.handle(event(["AAPL"]), runtime)

    entry = summary["succeeded"]["AAPL"]
    assert entry["rejected"] == [{"date": "2024-06-05", "reason": reason}]
    assert (entry["rejected_rows"], entry["out_of_range_rows"], entry["rows"]) == (1, 0, 1)
    after = stored(runtime, "AAPL")
    assert after.slice(0, 5).equals(before)  # 2024-06-05 is exactly what was stored
    assert after.column("date").to_pylist()[-1] == date(2024, 6, 10)
    out = capsys.readouterr().out
    assert TEST_TOKEN not in out + json.dumps(summary)


def test_rows_outside_the_range_are_never_stored_and_catch_up_is_not_misled(runtime, replies, standin):
    """Issue 9 regression: one extra row dated 2031-07-01 created year=2031, and the next catch-up
    started from it, leaving 640 of 674 trading days missing while reporting success."""
    days = weekdays(date(2024, 6, 3), date(2024, 6, 14))
    replies.by_ticker["SPY"] = json_reply([bar(d) for d in days] + [bar(date(2031, 7, 1))])
    summary = scraper.handle(event(["SPY"]), runtime)
    entry = summary["succeeded"]["SPY"]
    assert (entry["rows"], entry["out_of_range_rows"], entry["end"]) == (len(days), 1, "2024-06-14")
    assert [k.split("/")[3] for k in runtime.store.list_keys("prices/daily/ticker=SPY/")] == ["year=2024"]

    standin.requests.clear()
    scraper.handle({"tickers": ["SPY"]}, runtime)  # the daily catch-up
    (request,) = standin.requests
    assert request.params["startDate"] == str(date(2024, 6, 14) - timedelta(days=7))
    assert request.params["endDate"] == "2024-06-14"


def test_catch_up_never_stores_a_day_after_today_in_new_york(runtime, replies, standin):
    # 02:00 UTC on Saturday is still Friday evening in New York: Saturday's "bar" is out of range.
    runtime.clock = lambda: datetime(2024, 6, 15, 2, 0, tzinfo=UTC)
    replies.by_ticker["NVDA"] = json_reply([bar(date(2024, 6, 15))])
    summary = scraper.handle({"tickers": ["NVDA"]}, runtime)  # nothing stored: the latest bar only
    assert summary["succeeded"]["NVDA"]["out_of_range_rows"] == 1
    assert list(runtime.store.list_keys("prices/")) == []
    replies.by_ticker["NVDA"] = json_reply(
        [bar(date(2024, 6, 13)), bar(date(2024, 6, 14)), bar(date(2024, 6, 17))]
    )
    scraper.handle(event(["NVDA"], end="2024-06-30"), runtime)  # a range reaching into the future
    assert standin.requests[-1].params["endDate"] == "2024-06-14"
    assert stored(runtime, "NVDA").column("date").to_pylist() == [date(2024, 6, 13), date(2024, 6, 14)]


def test_a_body_that_is_not_a_list_of_objects_is_a_bad_payload_and_stores_nothing(runtime, replies):
    replies.by_ticker["MSFT"] = json_reply([bar(date(2024, 6, 3)), 42])
    replies.by_ticker["SPY"] = json_reply([bar(date(2024, 6, 3))])
    summary = scraper.handle(event(["MSFT", "SPY"]), runtime)
    assert summary["failed"]["MSFT"]["error"] == "bad_payload"
    assert "MSFT" in summary["failed"]["MSFT"]["message"]
    assert summary["succeeded"]["SPY"]["rows"] == 1
    assert list(runtime.store.list_keys("prices/daily/ticker=MSFT/")) == []


# ---------------------------------------------------------------- property: any reply

# The range each mode asks for: the event's dates, or (catch-up) the last stored day minus the
# lookback (2024-06-07 - 7 days) to today in New York.
RANGES = {"range": (date(2024, 6, 3), date(2024, 6, 14)), "catch_up": (date(2024, 5, 31), date(2024, 6, 14))}
OLD_DAYS = weekdays(date(2024, 5, 27), date(2024, 6, 7))  # partly inside the range
_tickers = itertools.count()

numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(min_value=-(2**70), max_value=2**70)
anything = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=5) | st.just(f"Token {TEST_TOKEN}"),
    lambda children: (
        st.lists(children, max_size=2) | st.dictionaries(st.text(max_size=3), children, max_size=2)
    ),
    max_leaves=4,
)
day_strings = st.one_of(
    st.dates(date(2024, 5, 20), date(2024, 6, 21)).map(lambda d: f"{d.isoformat()}T00:00:00.000Z"),
    st.dates(date(2024, 5, 20), date(2024, 6, 21)).map(date.isoformat),
    st.dates(date(1990, 1, 1), date(2040, 1, 1)).map(date.isoformat),
)
ALL_KEYS = ("date", *KEYS, "divCash", "splitFactor", "extra")
# A plausible bar with up to two fields replaced by anything (or removed): most rows are nearly valid,
# so each rule is met alone as well as in company.
hostile_rows = st.builds(
    lambda day, close, changes: {
        k: v for k, v in {**bar(day, close=close), **changes}.items() if v is not DROP
    },
    day_strings,
    st.floats(min_value=2.0, max_value=1e6),
    st.dictionaries(
        st.sampled_from(ALL_KEYS),
        st.one_of(
            st.just(DROP), numbers, anything, st.sampled_from(["2024-06-05T00:00:00.000Zx", TEST_TOKEN])
        ),
        max_size=2,
    ),
)


def reference_valid(row: dict, bounds: tuple[date, date]) -> date | None:
    """Independent statement of the rule (plainer than the code under test): the row's day if storable."""
    raw = row.get("date")
    if not isinstance(raw, str) or raw[10:] not in ("", "T00:00:00.000Z"):
        return None  # the generated forms; the others are covered in tests/test_validation.py
    try:
        day = date.fromisoformat(raw[:10])
    except ValueError:
        return None
    if len(raw[:10]) != 10 or not bounds[0] <= day <= bounds[1]:
        return None

    def number(key, positive=False, whole=False):
        value = row.get(key)
        if value is None:
            return key != "close"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        try:
            value = float(value) if not whole else value
        except OverflowError:
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if whole and (value != int(value) or not -(2**63) <= int(value) < 2**63):
            return False
        return value > 0 if positive else value >= 0

    ok = all(number(k, positive=k == "close", whole=k == "volume") for k in KEYS)
    ok = ok and number("divCash") and number("splitFactor", positive=True)
    for high, low in (("high", "low"), ("adjHigh", "adjLow")):
        if ok and row.get(high) is not None and row.get(low) is not None and row[high] < row[low]:
            ok = False
    return day if ok else None


@pytest.mark.parametrize("mode", RANGES)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(hostile_rows, max_size=6))
def test_any_reply_keeps_old_data_plus_only_valid_rows_of_the_range(mode, rows, runtime, replies, capsys):
    ticker = f"P{next(_tickers)}"
    prices = PriceStore(runtime.store)
    old = rows_to_table([bar(d, close=7.0) for d in OLD_DAYS])
    # Seeded as fetched after every generated event: no corporate-action rewrite widens the request.
    prices.upsert(ticker, old, fetched_at=EVENING + timedelta(days=1))
    replies.by_ticker[ticker] = json_reply(json.dumps(rows, allow_nan=True))  # NaN/Infinity literals

    bounds = RANGES[mode]
    request = event([ticker], str(bounds[0]), str(bounds[1])) if mode == "range" else {"tickers": [ticker]}
    summary = scraper.handle(request, runtime)

    expected = {d: {"close": 7.0} for d in OLD_DAYS}
    for row in rows:  # later rows of the same date win, as Tiingo's newest data does
        day = reference_valid(row, bounds)
        if day is not None:
            expected[day] = row
    got = PriceStore(runtime.store).read_ticker(ticker).to_pylist()
    assert [r["date"] for r in got] == sorted(expected)
    for r in got:
        assert r["close"] == float(expected[r["date"]]["close"])
    entry = summary["succeeded"].get(ticker)
    assert entry is not None, summary["failed"]  # a list of objects is never a failure
    in_range = [r for r in rows if reference_valid(r, bounds) is not None]
    assert entry["rejected_rows"] + entry["out_of_range_rows"] + len(in_range) == len(rows)
    everything = capsys.readouterr().out + json.dumps(summary)
    everything += "".join(
        runtime.store.get(k).body.hex() for k in runtime.store.list_keys(f"prices/daily/ticker={ticker}/")
    )
    assert TEST_TOKEN not in everything
    assert TEST_TOKEN.encode().hex() not in everything
