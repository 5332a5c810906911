"""``backfill/progress.json``: the public JSON shape of the backfill's progress, written and read strictly.

Written with sorted tickers and a fixed key order, so unchanged state is byte-identical (the store then
skips the write). Read strictly, because a misread file is acted on: ``"done": "false"`` read as done
would end a backfill and be written back as ``true``. Anything that is not exactly what ``to_json``
writes (a string for a boolean, a naive timestamp, a negative or fractional counter, a planned ticker
without ``end``, a ``next_start`` beyond ``end``, an unknown key or version) is one
``ProgressFormatError`` naming the field (``tickers.AAPL.done``); the store adds the file's name and
never writes over a file it could not read.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Any

from stockpipe.backfill.plan import ONE_DAY
from stockpipe.backfill.state import Lease, Progress, TickerProgress, iso
from stockpipe.errors import clean_message

VERSION = 1
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TOP_KEYS = ("version", "tickers")
_RECORD_KEYS = (
    "start",
    "end",
    "next_start",
    "fetched_from",
    "done",
    "attempts",
    "last_error",
    "parked",
    "first_date",
    "updated_at",
    "planned",
    "lease",
    "chunks_done",
    "rows",
    "requests",
)
_LEASE_KEYS = ("owner", "expires", "start", "end")


class ProgressFormatError(ValueError):
    """progress.json is not what ``to_json`` writes; ``field`` is the dotted path of the first problem."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field


# ---------------------------------------------------------------- writing


def to_json(progress: Progress) -> bytes:
    """``{"version": 1, "tickers": {T: {...}}}``, tickers sorted so unchanged state is byte-identical."""
    tickers = {name: _record_to_dict(progress.tickers[name]) for name in sorted(progress.tickers)}
    return json.dumps({"version": VERSION, "tickers": tickers}, indent=1).encode()


def _record_to_dict(record: TickerProgress) -> dict[str, Any]:
    lease = record.lease
    for moment in (record.updated_at, lease.expires if lease else None):
        if moment is not None and moment.utcoffset() is None:  # never write what could not be read back
            raise ValueError(
                f"progress timestamps need a time zone, got {moment.isoformat()} (a naive clock?)"
            )
    data: dict[str, Any] = {
        "start": iso(record.start),
        "end": iso(record.end),
        "next_start": iso(record.next_start),
    }
    if record.fetched_from is not None:  # only extended histories carry it: other records stay as they were
        data["fetched_from"] = iso(record.fetched_from)
    data.update(
        done=record.done,
        attempts=record.attempts,
        last_error=record.last_error,
        parked=record.parked,
        first_date=iso(record.first_date),
        updated_at=iso(record.updated_at),
        planned=record.planned,
        lease=None
        if lease is None
        else {
            "owner": lease.owner,
            "expires": lease.expires.isoformat(),
            "start": iso(lease.start),
            "end": iso(lease.end),
        },
        chunks_done=record.chunks_done,
        rows=record.rows,
        requests=record.requests,
    )
    return data


# ---------------------------------------------------------------- reading


def from_json(body: bytes | str) -> Progress:
    """Parse progress.json; ProgressFormatError (a ValueError) naming the field for anything malformed."""
    try:
        data = json.loads(body)
    except ValueError:
        raise ProgressFormatError("the file", "is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProgressFormatError("the file", f"must be a JSON object, got {_describe(data)}")
    _no_unknown_keys(data, _TOP_KEYS, "the file")
    version = data.get("version")
    if type(version) is not int or version != VERSION:
        raise ProgressFormatError("version", f"must be {VERSION}, got {_describe(version)}")
    raw = data.get("tickers", {})
    if not isinstance(raw, dict):
        raise ProgressFormatError("tickers", f"must be an object, got {_describe(raw)}")
    return Progress({name: _record_from_dict(name, value) for name, value in raw.items()})


class _Fields:
    """Typed access to one JSON object's fields; every error names ``<where>.<key>``."""

    def __init__(self, where: str, raw: dict[str, Any]) -> None:
        self.where = where
        self.raw = raw

    def error(self, key: str, problem: str) -> ProgressFormatError:
        return ProgressFormatError(f"{self.where}.{key}", problem)

    def day(self, key: str) -> date | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, str) and _DATE.fullmatch(value):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise self.error(key, f"must be a date YYYY-MM-DD or null, got {_describe(value)}")

    def moment(self, key: str, *, required: bool = False) -> datetime | None:
        value = self.raw.get(key)
        if value is None and not required:
            return None
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                parsed = None
            if parsed is not None and parsed.utcoffset() is not None:
                return parsed
            if parsed is not None:
                raise self.error(
                    key, f"must carry a time zone (like 2024-06-14T22:00:00+00:00), got {_describe(value)}"
                )
        raise self.error(key, f"must be a timestamp with a time zone, got {_describe(value)}")

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if type(value) is not bool:
            raise self.error(key, f"must be true or false (a JSON boolean), got {_describe(value)}")
        return value

    def count(self, key: str) -> int:
        value = self.raw.get(key, 0)
        if type(value) is not int or value < 0:
            raise self.error(key, f"must be a non-negative integer, got {_describe(value)}")
        return value

    def text(self, key: str, *, required: bool = False) -> str | None:
        value = self.raw.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or (required and not value):
            raise self.error(
                key,
                f"must be {'a non-empty string' if required else 'a string or null'}, got {_describe(value)}",
            )
        return value


def _record_from_dict(name: str, value: Any) -> TickerProgress:
    where = f"tickers.{clean_message(name, 40)}"
    if not isinstance(value, dict):
        raise ProgressFormatError(where, f"must be an object, got {_describe(value)}")
    _no_unknown_keys(value, _RECORD_KEYS, where)
    fields = _Fields(where, value)
    lease_raw = value.get("lease")
    lease = None
    if lease_raw is not None:
        if not isinstance(lease_raw, dict):
            raise fields.error("lease", f"must be an object or null, got {_describe(lease_raw)}")
        _no_unknown_keys(lease_raw, _LEASE_KEYS, f"{where}.lease")
        lease_fields = _Fields(f"{where}.lease", lease_raw)
        owner = lease_fields.text("owner", required=True)
        expires = lease_fields.moment("expires", required=True)
        assert owner is not None
        assert expires is not None
        lease = Lease(owner, expires, lease_fields.day("start"), lease_fields.day("end"))
    record = TickerProgress(
        start=fields.day("start"),
        end=fields.day("end"),
        next_start=fields.day("next_start"),
        fetched_from=fields.day("fetched_from"),
        done=fields.flag("done", False),
        attempts=fields.count("attempts"),
        last_error=fields.text("last_error"),
        parked=fields.flag("parked", False),
        first_date=fields.day("first_date"),
        updated_at=fields.moment("updated_at"),
        # Records written without "planned" (by hand or an older version) are planned when dated.
        planned=fields.flag("planned", value.get("end") is not None),
        lease=lease,
        chunks_done=fields.count("chunks_done"),
        rows=fields.count("rows"),
        requests=fields.count("requests"),
    )
    _check_consistent(record, fields)
    return record


def _check_consistent(record: TickerProgress, fields: _Fields) -> None:
    """The relations every written record keeps; a record that breaks one would be misplanned."""
    if record.planned and record.end is None:
        raise fields.error("end", "is required when planned is true, got null")
    if not record.planned and (record.next_start is not None or record.fetched_from is not None):
        key = "next_start" if record.next_start is not None else "fetched_from"
        raise fields.error(key, "must be null while planned is false")
    if record.next_start is not None:
        assert record.end is not None
        if record.next_start > record.end + ONE_DAY:
            raise fields.error(
                "next_start", f"{record.next_start} is after end + 1 day ({record.end + ONE_DAY})"
            )
        if record.start is not None and record.next_start < record.start:
            raise fields.error("next_start", f"{record.next_start} is before start ({record.start})")
    if record.fetched_from is not None:
        upper = record.next_start or (record.end + ONE_DAY if record.end else None)
        if record.start is None or record.fetched_from <= record.start:
            raise fields.error("fetched_from", f"{record.fetched_from} must be after start ({record.start})")
        if upper is not None and record.fetched_from > upper:
            raise fields.error("fetched_from", f"{record.fetched_from} is after the fetched range's end")
    if record.done and (record.next_start is not None or record.fetched_from is not None):
        key = "next_start" if record.next_start is not None else "fetched_from"
        raise fields.error("done", f"is true while {key} still has days to fetch")


def _no_unknown_keys(raw: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = sorted(clean_message(key, 40) for key in raw if key not in known)
    if unknown:
        listed = ", ".join(repr(key) for key in unknown)
        raise ProgressFormatError(where, f"has unknown key(s) {listed}; known: {', '.join(known)}")


def _describe(value: Any) -> str:
    """What a bad value is, short and scrubbed (a hand-edited file may hold anything)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {json.dumps(clean_message(value, 40))}"
    if isinstance(value, int | float):
        return f"the number {clean_message(value, 40)}"
    return "an array" if isinstance(value, list) else "an object"
