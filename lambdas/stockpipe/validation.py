"""The one validation boundary for Tiingo replies: which rows may be stored, and why the others may not.

Policy: **quarantine**. A reply that is a JSON list of objects is screened row by row; valid rows of the
requested range are stored, invalid rows are never stored (so they never replace a stored value) and are
reported in the ticker's summary entry as ``{"date", "reason"}``, rows outside the range are counted.
A reply that is not a list of objects is no data at all: ``BadPayloadError``.

A row is valid when
- ``date`` is a Tiingo date: ``YYYY-MM-DD``, optionally followed by exactly midnight UTC as Tiingo writes
  it (``T00:00:00``, then optionally ``.`` and 1-9 zeros, then optionally ``Z`` or ``+00:00``); nothing
  may follow, and any other time is refused (it would make the calendar day ambiguous);
- ``close`` is a finite number > 0;
- every other field of ``FIELDS``, when present and not null, is a finite number: prices, volumes and
  ``divCash`` >= 0, ``splitFactor`` > 0, ``volume`` a whole number within int64;
- ``high >= low`` and ``adjHigh >= adjLow`` when both are present.

JSON's non-standard ``NaN``/``Infinity`` literals are read as ``NON_FINITE`` (``parse_json``) and refused
like any other non-finite value. Reasons name the field and the rule, never the value: a reply can
carry anything, the token included. Standard library only.
"""

from __future__ import annotations

import json
import math
import operator
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from stockpipe.errors import BadPayloadError

# How many rejected rows a summary entry lists (``rejected_rows`` counts them all).
REJECTED_SHOWN: Final = 20
_INT64_LIMIT: Final = 2**63


@dataclass(frozen=True)
class Field:
    """One number of a price row: Tiingo's JSON key, the stored column, and its rule."""

    key: str
    column: str
    required: bool = False
    positive: bool = False  # > 0 (else >= 0)
    whole: bool = False  # an int64 column


# In the stored column order (the Parquet schema follows it).
FIELDS: Final = (
    Field("open", "open"),
    Field("high", "high"),
    Field("low", "low"),
    Field("close", "close", required=True, positive=True),
    Field("volume", "volume", whole=True),
    Field("adjOpen", "adj_open"),
    Field("adjHigh", "adj_high"),
    Field("adjLow", "adj_low"),
    Field("adjClose", "adj_close"),
    Field("adjVolume", "adj_volume"),
    Field("divCash", "div_cash"),
    Field("splitFactor", "split_factor", positive=True),
)
_ORDERED_PAIRS: Final = (("high", "low"), ("adjHigh", "adjLow"))
_INDEX: Final = {spec.key: i for i, spec in enumerate(FIELDS)}
_GET_FIELDS: Final = operator.itemgetter(*(spec.key for spec in FIELDS))  # KeyError when one is absent
_INF: Final = math.inf
_SPLIT: Final = 1 + _INDEX["splitFactor"]  # positions in a valid row (the date comes first)
_DIVIDEND: Final = 1 + _INDEX["divCash"]

_TIINGO_DAY = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:T00:00:00(?:\.0{1,9})?(?:Z|\+00:00)?)?")
_USUAL_SUFFIX: Final = "T00:00:00.000Z"
_USUAL_LENGTH: Final = 10 + len(_USUAL_SUFFIX)
DATE_RULE: Final = "not a Tiingo date (YYYY-MM-DD, optionally T00:00:00[.000][Z|+00:00])"


class _NonFinite:
    """A JSON ``NaN``/``Infinity``/``-Infinity`` literal (never a number we store)."""

    def __repr__(self) -> str:
        return "NON_FINITE"


NON_FINITE: Final = _NonFinite()


def parse_json(body: bytes | str) -> Any:
    """``json.loads`` that reads the NaN/Infinity literals as ``NON_FINITE`` instead of floats."""
    return json.loads(body, parse_constant=lambda _literal: NON_FINITE)


def parse_day(value: Any) -> date | None:
    """The calendar day of a Tiingo date string, or None when it is not one (see the module rule)."""
    if not isinstance(value, str):
        return None
    if (  # the form Tiingo sends on every row, checked without the regex (the same rule)
        len(value) == _USUAL_LENGTH
        and value.endswith(_USUAL_SUFFIX)
        and value.isascii()
        and value[4] == value[7] == "-"
        and value[:4].isdigit()
        and value[5:7].isdigit()
        and value[8:10].isdigit()
    ):
        try:
            return date(int(value[:4]), int(value[5:7]), int(value[8:10]))
        except ValueError:
            return None
    match = _TIINGO_DAY.fullmatch(value)
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


@dataclass
class Screened:
    """A reply after screening: the storable rows, plus what was left out and why.

    ``valid`` is sorted by date with one row per date (of repeated dates the last is kept: later rows
    are newer data), so a table built from it needs no sort and its bounds are its ends.
    """

    valid: list[tuple[Any, ...]] = field(default_factory=list)  # (date, *FIELDS values) per row
    rejected: list[dict[str, str | None]] = field(default_factory=list)  # the first REJECTED_SHOWN
    rejected_rows: int = 0
    out_of_range_rows: int = 0

    @property
    def rows(self) -> int:
        return len(self.valid)

    @property
    def first_date(self) -> date | None:
        return self.valid[0][0] if self.valid else None

    @property
    def last_date(self) -> date | None:
        return self.valid[-1][0] if self.valid else None

    def newest_event(self) -> date | None:
        """The newest day with a split (``splitFactor`` != 1) or a dividend (``divCash`` != 0)."""
        for row in reversed(self.valid):
            split, dividend = row[_SPLIT], row[_DIVIDEND]
            if (split is not None and split != 1.0) or (dividend is not None and dividend != 0.0):
                return row[0]
        return None

    def columns(self) -> dict[str, list[Any]]:
        """The valid rows by stored column name: ``date`` then FIELDS order."""
        names = ["date", *(spec.column for spec in FIELDS)]
        if not self.valid:
            return {name: [] for name in names}
        return dict(zip(names, map(list, zip(*self.valid, strict=True)), strict=True))

    def reject(self, day: date | None, reason: str) -> None:
        self.rejected_rows += 1
        if len(self.rejected) < REJECTED_SHOWN:
            self.rejected.append({"date": day.isoformat() if day else None, "reason": reason})


def screen(rows: Any, *, start: date | None = None, end: date | None = None) -> Screened:
    """Split a parsed reply into storable rows of ``[start, end]`` (either bound optional) and the rest.

    BadPayloadError when the reply is not a JSON list of objects (nothing of it is stored).
    """
    if not isinstance(rows, list):
        raise BadPayloadError(f"expected a JSON list of price rows, got {_json_type(rows)}")
    if not all(isinstance(row, dict) for row in rows):
        raise BadPayloadError("expected every price row to be a JSON object")
    screened = Screened()
    valid = screened.valid
    ordered = True  # Tiingo sends ascending dates: then no sort is needed
    for row in rows:
        day = parse_day(row.get("date"))
        if day is None:
            screened.reject(None, "date is missing" if row.get("date") is None else f"date is {DATE_RULE}")
            continue
        if (start is not None and day < start) or (end is not None and day > end):
            screened.out_of_range_rows += 1
            continue
        kept = _typical(row, day)
        if kept is None:  # anything unusual (an int price, a null, a bad value) takes the field-by-field path
            values = _values(row)
            if isinstance(values, str):
                screened.reject(day, values)
                continue
            kept = (day, *values)
        if valid and day <= valid[-1][0]:
            ordered = False
        valid.append(kept)
    if not ordered:  # one row per date, the last one kept, in date order
        screened.valid = sorted({row[0]: row for row in valid}.values(), key=lambda row: row[0])
    return screened


def _typical(row: dict[str, Any], day: date) -> tuple[Any, ...] | None:
    """The valid row as Tiingo usually sends it (every field, float prices, an int volume), in one test.

    The same rules as ``_values``, for this shape only: it returns None, never a reason, so any row it
    does not accept is judged by ``_values``. Together they are the one rule set (tests/test_validation).
    """
    try:
        o, h, lo, c, v, ao, ah, al, ac, av, dc, sf = _GET_FIELDS(row)
    except KeyError:
        return None
    if (
        type(o) is float
        and type(h) is float
        and type(lo) is float
        and type(c) is float
        and type(v) is int
        and type(ao) is float
        and type(ah) is float
        and type(al) is float
        and type(ac) is float
        and type(av) is float
        and type(dc) is float
        and type(sf) is float
        and 0.0 <= o < _INF
        and 0.0 <= lo <= h < _INF
        and 0.0 < c < _INF
        and 0 <= v < _INT64_LIMIT
        and 0.0 <= ao < _INF
        and 0.0 <= al <= ah < _INF
        and 0.0 <= ac < _INF
        and 0.0 <= av < _INF
        and 0.0 <= dc < _INF
        and 0.0 < sf < _INF
    ):
        return (day, o, h, lo, c, v, ao, ah, al, ac, av, dc, sf)
    return None


def _values(row: dict[str, Any]) -> list[float | int | None] | str:
    """The row's numbers in FIELDS order, or the reason it is refused."""
    values: list[float | int | None] = []
    for spec in FIELDS:
        raw = row.get(spec.key)
        # The common case first (a finite, non-negative float of a float column): no call, no conversion.
        if type(raw) is float and 0.0 <= raw < math.inf and not spec.whole and (raw or not spec.positive):
            values.append(raw)
            continue
        if raw is None:
            if spec.required:
                return f"{spec.key} is missing"
            values.append(None)
            continue
        value = _number(raw, spec)
        if isinstance(value, str):
            return f"{spec.key} {value}"
        values.append(value)
    for high, low in _ORDERED_PAIRS:
        high_value, low_value = values[_INDEX[high]], values[_INDEX[low]]
        if high_value is not None and low_value is not None and high_value < low_value:
            return f"{high} is below {low}"
    return values


def _number(raw: Any, spec: Field) -> float | int | str:
    """``raw`` as the column's number, or what is wrong with it (never the value itself)."""
    if raw is NON_FINITE:
        return "is not finite (NaN or Infinity)"
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return "is not a number"
    if isinstance(raw, float) and not math.isfinite(raw):
        return "is not finite (NaN or Infinity)"  # e.g. 1e999, which JSON parses as inf
    if spec.whole:
        if isinstance(raw, float) and not raw.is_integer():
            return "is not a whole number"
        if not -_INT64_LIMIT <= raw < _INT64_LIMIT:
            return "is out of range"
        value: float | int = int(raw)
    else:
        try:
            value = float(raw)  # exact ints beyond 2**53 round, as Tiingo's own floats do
        except OverflowError:
            return "is not finite (NaN or Infinity)"
    if spec.positive and not value > 0:
        return "must be > 0"
    if value < 0:
        return "must be >= 0"
    return value


def _json_type(value: Any) -> str:
    if value is NON_FINITE:
        return "a non-finite number"
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )
