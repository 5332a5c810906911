"""Event validation: any JSON value either validates or raises ValueError with a message."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockpipe.scrape_event import parse_scrape_event
from stockpipe.tickers import normalize_ticker

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
plausible_events = st.fixed_dictionaries(
    {},
    optional={
        "tickers": st.lists(st.sampled_from(["AAPL", "brk.b", "", "A B", "X" * 21, 3]), max_size=4)
        | json_values,
        "start_date": st.dates().map(str) | st.text(max_size=12) | json_values,
        "end_date": st.dates().map(str) | st.text(max_size=12) | json_values,
    },
)


@given(json_values | plausible_events)
def test_any_json_value_validates_or_raises_value_error(event):
    try:
        request = parse_scrape_event(event)
    except ValueError as exc:
        message = str(exc)
        assert message, "a ValueError must say what is wrong"
        return
    if request.start and request.end:
        assert request.start <= request.end
    for ticker in request.tickers or ():
        assert normalize_ticker(ticker) == ticker


def test_valid_event_is_parsed():
    request = parse_scrape_event({"tickers": [" aapl ", "BRK.B", "AAPL"], "start_date": "2024-01-02"})
    assert request.tickers == ("AAPL", "BRK-B")
    assert request.start == date(2024, 1, 2)
    assert request.end is None


@pytest.mark.parametrize("raw", ["", "TOO-LONG-TICKER-SYMBOL", "A/B", "ÄPL", "A B"])
def test_bad_tickers_are_named(raw):
    with pytest.raises(ValueError, match="invalid ticker"):
        normalize_ticker(raw)
