"""One ticker's progress record as JSON, written in a fixed shape and read strictly.

Shared by every object that holds records (``backfill/tickers/<T>.json``, the index shards' summaries,
and the ``backfill/progress.json`` of earlier versions). Read strictly, because a misread record is
acted on: ``"done": "false"`` read as done would end a backfill and be written back as ``true``.
Anything that is not exactly what ``record_to_dict`` writes (a string for a boolean, a naive timestamp,
a negative or fractional counter, a planned ticker without ``end``, a ``next_start`` beyond ``end``, an
unknown key) is one ``ProgressFormatError`` naming the field by its JSON path (``progress.done``); the
stores add the object's name and never write over an object they could not read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from stockpipe.backfill.plan import ONE_DAY
from stockpipe.backfill.state import Lease, TickerProgress, iso
from stockpipe.errors import clean_message

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
RECORD_KEYS = (
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
    "metadata",
    "max_chunks",
)
_LEASE_KEYS = ("owner", "expires", "start", "end")
_METADATA = ("due", "read")


class ProgressFormatError(ValueError):
    """A stored object is not what its writer writes; ``field`` is the JSON path of the first problem."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field


# ---------------------------------------------------------------- writing


def check_aware(*moments: datetime | None) -> None:
    """ValueError for a naive timestamp: never write what could not be read back."""
    for moment in moments:
        if moment is not None and moment.utcoffset() is None:
            raise ValueError(
                f"progress timestamps need a time zone, got {moment.isoformat()} (a naive clock?)"
            )


def record_to_dict(record: TickerProgress, *, legacy: bool = False) -> dict[str, Any]:
    """The record's JSON object; ``legacy``: the version-1 shape (no ``metadata`` / ``max_chunks``)."""
    lease = record.lease
    check_aware(record.updated_at, lease.expires if lease else None)
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
    if not legacy:
        data.update(metadata=record.metadata, max_chunks=record.max_chunks)
    return data


# ---------------------------------------------------------------- reading


class Fields:
    """Typed access to one JSON object's fields; every error names ``<where>.<key>``."""

    def __init__(self, where: str, raw: dict[str, Any]) -> None:
        self.where = where
        self.raw = raw

    def error(self, key: str, problem: str) -> ProgressFormatError:
        return ProgressFormatError(f"{self.where}.{key}" if self.where else key, problem)

    def day(self, key: str) -> date | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, str) and _DATE.fullmatch(value):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise self.error(key, f"must be a date YYYY-MM-DD or null, got {describe(value)}")

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
                    key, f"must carry a time zone (like 2024-06-14T22:00:00+00:00), got {describe(value)}"
                )
        raise self.error(key, f"must be a timestamp with a time zone, got {describe(value)}")

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if type(value) is not bool:
            raise self.error(key, f"must be true or false (a JSON boolean), got {describe(value)}")
        return value

    def count(self, key: str, *, required: bool = False, minimum: int = 0) -> int:
        if required and key not in self.raw:
            raise self.error(key, "is required")
        value = self.raw.get(key, 0)
        if type(value) is not int or value < minimum:
            wanted = "a non-negative integer" if minimum == 0 else f"an integer >= {minimum}"
            raise self.error(key, f"must be {wanted}, got {describe(value)}")
        return value

    def text(self, key: str, *, required: bool = False) -> str | None:
        value = self.raw.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or (required and not value):
            wanted = "a non-empty string" if required else "a string or null"
            raise self.error(key, f"must be {wanted}, got {describe(value)}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str | None) -> str | None:
        value = self.raw.get(key, default)
        if value is not None and value not in choices:
            listed = ", ".join(f'"{c}"' for c in choices)
            raise self.error(key, f"must be one of {listed} or null, got {describe(value)}")
        return value


def record_from_dict(where: str, value: Any) -> TickerProgress:
    """A record from its JSON object (either shape); ProgressFormatError naming ``<where>.<key>``."""
    if not isinstance(value, dict):
        raise ProgressFormatError(where, f"must be an object, got {describe(value)}")
    no_unknown_keys(value, RECORD_KEYS, where)
    fields = Fields(where, value)
    lease = _lease(fields, value.get("lease"))
    # Records written without "planned" (by hand or an older version) are planned when dated.
    planned = fields.flag("planned", value.get("end") is not None)
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
        planned=planned,
        lease=lease,
        chunks_done=fields.count("chunks_done"),
        rows=fields.count("rows"),
        requests=fields.count("requests"),
        # Records of earlier versions were all planned from Tiingo's metadata.
        metadata=fields.choice("metadata", _METADATA, "read" if planned else None),  # type: ignore[arg-type]
        max_chunks=fields.count("max_chunks"),
    )
    check_consistent(record, fields)
    return record


def _lease(fields: Fields, raw: Any) -> Lease | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise fields.error("lease", f"must be an object or null, got {describe(raw)}")
    where = f"{fields.where}.lease" if fields.where else "lease"
    no_unknown_keys(raw, _LEASE_KEYS, where)
    lease_fields = Fields(where, raw)
    owner = lease_fields.text("owner", required=True)
    expires = lease_fields.moment("expires", required=True)
    assert owner is not None
    assert expires is not None
    return Lease(owner, expires, lease_fields.day("start"), lease_fields.day("end"))


def check_consistent(record: TickerProgress, fields: Fields) -> None:
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


def load_object(body: bytes | str, what: str = "the object") -> dict[str, Any]:
    """A stored JSON object; ProgressFormatError for invalid JSON or anything but an object."""
    try:
        data = json.loads(body)
    except ValueError:
        raise ProgressFormatError(what, "is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProgressFormatError(what, f"must be a JSON object, got {describe(data)}")
    return data


def check_version(data: dict[str, Any], expected: int) -> None:
    version = data.get("version")
    if type(version) is not int or version != expected:
        raise ProgressFormatError("version", f"must be {expected}, got {describe(version)}")


def no_unknown_keys(raw: dict[str, Any], known: Iterable[str], where: str) -> None:
    known = tuple(known)
    unknown = sorted(clean_message(key, 40) for key in raw if key not in known)
    if unknown:
        listed = ", ".join(repr(key) for key in unknown)
        raise ProgressFormatError(
            where or "the object", f"has unknown key(s) {listed}; known: {', '.join(known)}"
        )


def describe(value: Any) -> str:
    """What a bad value is, short and scrubbed (a hand-edited object may hold anything)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {json.dumps(clean_message(value, 40))}"
    if isinstance(value, int | float):
        return f"the number {clean_message(value, 40)}"
    return "an array" if isinstance(value, list) else "an object"
