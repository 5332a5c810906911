"""The reply rules (stockpipe.validation), table-driven: each hostile row is refused with a reason that
names the field and the rule and never quotes the value; each valid form is kept. The same rules are
exercised end to end (HTTP stand-in, moto S3, the handler) in tests/test_hostile_replies.py."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockpipe.errors import BadPayloadError
from stockpipe.prices import PRICE_SCHEMA, rows_to_table
from stockpipe.validation import (
    _TIINGO_DAY,
    FIELDS,
    NON_FINITE,
    REJECTED_SHOWN,
    _typical,
    _values,
    parse_day,
    parse_json,
    screen,
)
from tests.conftest import TEST_TOKEN

GOOD = {
    "date": "2024-06-03T00:00:00.000Z",
    "open": 10.0,
    "high": 12.0,
    "low": 9.5,
    "close": 11.0,
    "volume": 1000,
    "adjOpen": 5.0,
    "adjHigh": 6.0,
    "adjLow": 4.75,
    "adjClose": 5.5,
    "adjVolume": 2000.0,
    "divCash": 0.0,
    "splitFactor": 1.0,
}


def row(**changes):
    out = {**GOOD, **changes}
    return {k: v for k, v in out.items() if v is not _DROP}


_DROP = object()

REFUSED = [
    (row(close=float("nan")), "close is not finite (NaN or Infinity)"),
    (row(close=float("inf")), "close is not finite (NaN or Infinity)"),
    (row(close=None), "close is missing"),
    (row(close=_DROP), "close is missing"),
    ({"date": "2024-06-03"}, "close is missing"),
    (row(close=0), "close must be > 0"),
    (row(close=-0.0), "close must be > 0"),
    (row(close="11.0"), "close is not a number"),
    (row(close=True), "close is not a number"),
    (row(close=[11.0]), "close is not a number"),
    (row(close={"v": 1}), "close is not a number"),
    (row(close=10**400), "close is not finite (NaN or Infinity)"),
    (row(open=-1.0), "open must be >= 0"),
    (row(low=-0.01, high=1.0), "low must be >= 0"),
    (row(adjClose=-5.0), "adjClose must be >= 0"),
    (row(volume=-1), "volume must be >= 0"),
    (row(volume=1.5), "volume is not a whole number"),
    (row(volume=2**63), "volume is out of range"),
    (row(volume=1e300), "volume is out of range"),
    (row(adjVolume=-3.0), "adjVolume must be >= 0"),
    (row(divCash=-0.5), "divCash must be >= 0"),
    (row(splitFactor=0), "splitFactor must be > 0"),
    (row(splitFactor=-2.0), "splitFactor must be > 0"),
    (row(high=9.0, low=9.5), "high is below low"),
    (row(adjHigh=4.0, adjLow=4.75), "adjHigh is below adjLow"),
    (row(open=TEST_TOKEN), "open is not a number"),
]

BAD_DATES = [
    "2024-06-03T00:00:00.000Zjunk",
    "2024-06-03junk",
    "2024-06-03T04:00:00.000Z",  # not midnight: which day?
    "2024-06-03T00:00:00-05:00",
    "2024-06-03 00:00:00",
    "2024-6-3",
    "20240603",
    "2024-W23-1",
    "2024-02-30",
    "0000-01-01",
    "२०२४-०६-०३",  # non-ASCII digits
    "2024-06-03\n",
    "yesterday",
    TEST_TOKEN,
]


@pytest.mark.parametrize(("bad", "reason"), REFUSED, ids=[r for _, r in REFUSED])
def test_each_rule_refuses_the_row_and_names_field_and_rule(bad, reason):
    screened = screen([GOOD | {"date": "2024-06-04"}, bad])
    assert screened.rejected == [{"date": "2024-06-03", "reason": reason}]
    assert screened.rejected_rows == 1
    assert screened.columns()["date"] == [date(2024, 6, 4)]
    assert TEST_TOKEN not in reason


@pytest.mark.parametrize("value", BAD_DATES)
def test_dates_must_be_tiingo_dates_and_nothing_may_follow(value):
    assert parse_day(value) is None
    screened = screen([row(date=value)])
    assert screened.rows == 0
    assert screened.rejected[0]["date"] is None
    assert screened.rejected[0]["reason"].startswith("date is not a Tiingo date")


@pytest.mark.parametrize(
    "value",
    [
        "2024-06-03",
        "2024-06-03T00:00:00",
        "2024-06-03T00:00:00Z",
        "2024-06-03T00:00:00.000Z",
        "2024-06-03T00:00:00.000000Z",
        "2024-06-03T00:00:00+00:00",
        "2024-06-03T00:00:00.000+00:00",
    ],
)
def test_every_form_tiingo_writes_is_the_calendar_day(value):
    assert parse_day(value) == date(2024, 6, 3)


def test_missing_dates_and_non_string_dates():
    screened = screen([{"close": 1.0}, {"date": 20240603, "close": 1.0}, {"date": None, "close": 1.0}])
    assert [r["reason"] for r in screened.rejected] == [
        "date is missing",
        "date is not a Tiingo date (YYYY-MM-DD, optionally T00:00:00[.000][Z|+00:00])",
        "date is missing",
    ]


def test_optional_fields_may_be_missing_or_null_and_extra_keys_are_ignored():
    screened = screen([{"date": "2024-06-03", "close": 5.0, "open": None, "surprise": [1, 2]}])
    assert screened.rejected == []
    table = rows_to_table([{"date": "2024-06-03", "close": 5.0, "volume": 288688.0}])
    assert table.schema == PRICE_SCHEMA
    assert table.column("volume").to_pylist() == [288688]
    assert table.column("open").to_pylist() == [None]


def test_json_nan_and_infinity_literals_are_refused_not_parsed_as_floats():
    body = '[{"date": "2024-06-03", "close": NaN}, {"date": "2024-06-04", "close": 1, "open": -Infinity},'
    body += ' {"date": "2024-06-05", "close": 1e999}]'
    screened = screen(parse_json(body))
    assert [r["reason"] for r in screened.rejected] == [
        "close is not finite (NaN or Infinity)",
        "open is not finite (NaN or Infinity)",
        "close is not finite (NaN or Infinity)",
    ]


def test_range_bounds_count_rows_outside_and_keep_the_inside():
    rows = [row(date=d) for d in ("2024-05-31", "2024-06-03", "2024-06-14", "2031-07-01")]
    screened = screen(rows, start=date(2024, 6, 1), end=date(2024, 6, 14))
    assert screened.columns()["date"] == [date(2024, 6, 3), date(2024, 6, 14)]
    assert screened.out_of_range_rows == 2
    assert screened.rejected_rows == 0


def test_the_list_of_rejections_is_capped_and_the_count_is_exact():
    screened = screen([row(date=f"2024-01-{d:02d}", close=-1.0) for d in range(1, 32)])
    assert len(screened.rejected) == REJECTED_SHOWN
    assert screened.rejected_rows == 31


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"detail": "x"}, "got object"),
        ("rows", "got string"),
        (None, "got null"),
        ([GOOD, 1], "every price row to be a JSON object"),
        ([GOOD, [GOOD]], "every price row to be a JSON object"),
    ],
)
def test_a_body_that_is_not_a_list_of_objects_is_bad_payload(body, message):
    with pytest.raises(BadPayloadError, match=message):
        screen(body)


def test_rows_to_table_is_all_or_nothing_and_never_quotes_the_value():
    with pytest.raises(BadPayloadError) as caught:
        rows_to_table([GOOD, row(date="2024-06-04", close=TEST_TOKEN)])
    assert str(caught.value) == "price row 2024-06-04: close is not a number"


_values_strategy = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0.0, max_value=1e6),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.integers(min_value=0, max_value=10**9),
    st.none(),
    st.booleans(),
    st.just(NON_FINITE),
    st.text(max_size=3),
)


_typical_value = {spec.key: st.integers(0, 10**12) if spec.whole else st.floats(0.0, 1e6) for spec in FIELDS}


@settings(max_examples=800, deadline=None)
@given(
    base=st.fixed_dictionaries(_typical_value),
    changed=st.dictionaries(st.sampled_from([spec.key for spec in FIELDS]), _values_strategy, max_size=3),
    drop=st.sets(st.sampled_from([spec.key for spec in FIELDS]), max_size=1),
)
def test_the_fast_path_for_typical_rows_is_the_same_rule_set(base, changed, drop):
    """``_typical`` (one test for Tiingo's usual row shape) never accepts what the field-by-field rules
    refuse, and what it accepts is exactly what they would keep."""
    values = {**base, **changed}
    row = {k: v for k, v in values.items() if k not in drop}
    day = date(2024, 6, 3)
    fast = _typical(row, day)
    slow = _values(row)
    if fast is not None:
        assert not isinstance(slow, str), slow
        assert fast == (day, *slow)
        assert [type(x) for x in fast] == [type(x) for x in (day, *slow)]


def test_a_typical_row_takes_the_fast_path():
    assert _typical(GOOD, date(2024, 6, 3)) is not None


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789-٣२ Tx", min_size=10, max_size=10))
def test_the_usual_date_form_is_read_by_the_same_rule(prefix):
    value = prefix + "T00:00:00.000Z"
    match = _TIINGO_DAY.fullmatch(value)
    reference = None
    if match:
        try:
            reference = date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            reference = None
    assert parse_day(value) == reference
