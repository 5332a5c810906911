"""The index objects' JSON (version 2), written compactly in a fixed shape and read strictly.

``backfill/shards/<xx>.json``: ``{"version": 2, "shard": "3f", "rev": 12, "tickers": {T: entry}}``;
an entry holds ``rev`` (the ticker object's revision it summarises; 0: no object yet) and, only where
not null / false, ``universe`` and the summary fields (``start``, ``end``, ``next_start``,
``fetched_from``, ``done``, ``parked``, ``first_date``, ``planned``, ``metadata``); ``"record": false``
marks an object without progress (a reset ticker). A finished ticker costs about 130 bytes.

``backfill/index.json``: ``{"version": 2, "shards": 256, "synced": {...} | null, "fields": [...],
"totals": {"3f": [rev, pending, in_progress, done, parked, chunks_left, open, open_chunks_left,
open_unplanned]}}``. Like the ticker objects they are read strictly (``ProgressFormatError`` naming
the field), and an index object that cannot be read is never written over.
"""

from __future__ import annotations

import json
import re
from typing import Any

from stockpipe.backfill.index import Entry, Root, Shard, Synced, Totals
from stockpipe.backfill.record_codec import (
    Fields,
    ProgressFormatError,
    check_consistent,
    check_version,
    describe,
    load_object,
    no_unknown_keys,
)
from stockpipe.backfill.state import TickerProgress, iso
from stockpipe.errors import clean_message
from stockpipe.layout import BACKFILL_SHARDS, shard_of

INDEX_VERSION = 2
_SHARD_ID = re.compile(r"[0-9a-f]{2}")
_SUMMARY_DATES = ("start", "end", "next_start", "fetched_from", "first_date")
_SUMMARY_FLAGS = ("done", "parked", "planned")
_ENTRY_KEYS = ("rev", "universe", "record", *_SUMMARY_DATES, *_SUMMARY_FLAGS, "metadata")
TOTAL_FIELDS = ("rev", *Totals._fields)
_COMPACT = {"separators": (",", ":")}


# ---------------------------------------------------------------- shards


def shard_to_json(shard: Shard) -> bytes:
    tickers = {name: _entry_to_dict(shard.entries[name]) for name in sorted(shard.entries)}
    body = {"version": INDEX_VERSION, "shard": shard.id, "rev": shard.rev, "tickers": tickers}
    return json.dumps(body, **_COMPACT).encode()  # type: ignore[arg-type]


def _entry_to_dict(entry: Entry) -> dict[str, Any]:
    data: dict[str, Any] = {"rev": entry.rev}
    if entry.universe:
        data["universe"] = True
    summary = entry.summary
    if summary is None:
        if entry.rev:
            data["record"] = False
        return data
    for key in _SUMMARY_DATES:
        if getattr(summary, key) is not None:
            data[key] = iso(getattr(summary, key))
    for key in _SUMMARY_FLAGS:
        if getattr(summary, key):
            data[key] = True
    if summary.metadata is not None:
        data["metadata"] = summary.metadata
    return data


def shard_from_json(body: bytes, shard_id: str) -> Shard:
    data = load_object(body)
    no_unknown_keys(data, ("version", "shard", "rev", "tickers"), "")
    check_version(data, INDEX_VERSION)
    if data.get("shard") != shard_id:
        raise ProgressFormatError(
            "shard", f"must be {json.dumps(shard_id)} (the object's name), got {describe(data.get('shard'))}"
        )
    rev = Fields("", data).count("rev", required=True)
    raw = data.get("tickers")
    if not isinstance(raw, dict):
        raise ProgressFormatError("tickers", f"must be an object, got {describe(raw)}")
    entries = {}
    for name, value in raw.items():
        where = f"tickers.{clean_message(name, 40)}"
        if not isinstance(name, str) or shard_of(name) != shard_id:
            raise ProgressFormatError(where, f"does not belong in shard {shard_id}")
        entries[name] = _entry_from_dict(where, value)
    return Shard(shard_id, rev, entries)


def _entry_from_dict(where: str, value: Any) -> Entry:
    if not isinstance(value, dict):
        raise ProgressFormatError(where, f"must be an object, got {describe(value)}")
    no_unknown_keys(value, _ENTRY_KEYS, where)
    fields = Fields(where, value)
    rev = fields.count("rev", required=True)
    universe = fields.flag("universe", False)
    if not fields.flag("record", rev > 0) or rev == 0:
        no_unknown_keys(value, ("rev", "universe", "record"), where)
        return Entry(rev, universe, None)
    summary = TickerProgress(
        **{key: fields.day(key) for key in _SUMMARY_DATES},
        **{key: fields.flag(key, False) for key in _SUMMARY_FLAGS},
        metadata=fields.choice("metadata", ("due", "read"), None),  # type: ignore[arg-type]
    )
    check_consistent(summary, fields)
    return Entry(rev, universe, summary)


# ---------------------------------------------------------------- root


def root_to_json(root: Root) -> bytes:
    synced = root.synced
    body = {
        "version": INDEX_VERSION,
        "shards": BACKFILL_SHARDS,
        "synced": None
        if synced is None
        else {
            "universe": synced.universe,
            "start_date": iso(synced.start_date),
            "chunk_months": synced.chunk_months,
        },
        "fields": list(TOTAL_FIELDS),
        "totals": {sid: [rev, *totals] for sid, (rev, totals) in sorted(root.shards.items())},
    }
    return json.dumps(body, **_COMPACT).encode()  # type: ignore[arg-type]


def root_from_json(body: bytes) -> Root:
    data = load_object(body)
    no_unknown_keys(data, ("version", "shards", "synced", "fields", "totals"), "")
    check_version(data, INDEX_VERSION)
    if data.get("shards") != BACKFILL_SHARDS:
        raise ProgressFormatError("shards", f"must be {BACKFILL_SHARDS}, got {describe(data.get('shards'))}")
    if data.get("fields") != list(TOTAL_FIELDS):
        raise ProgressFormatError("fields", f"must be {json.dumps(list(TOTAL_FIELDS))}")
    raw = data.get("totals")
    if not isinstance(raw, dict):
        raise ProgressFormatError("totals", f"must be an object, got {describe(raw)}")
    shards: dict[str, tuple[int, Totals]] = {}
    for sid, values in raw.items():
        where = f"totals.{clean_message(sid, 40)}"
        if not (isinstance(sid, str) and _SHARD_ID.fullmatch(sid) and int(sid, 16) < BACKFILL_SHARDS):
            raise ProgressFormatError(where, "is not a shard id (two hex digits)")
        ok = isinstance(values, list) and len(values) == len(TOTAL_FIELDS)
        if not ok or any(type(v) is not int or v < 0 for v in values):
            raise ProgressFormatError(
                where, f"must be {len(TOTAL_FIELDS)} non-negative integers ({', '.join(TOTAL_FIELDS)})"
            )
        shards[sid] = (values[0], Totals(*values[1:]))
    return Root(_synced(data.get("synced")), shards)


def _synced(raw: Any) -> Synced | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ProgressFormatError("synced", f"must be an object or null, got {describe(raw)}")
    no_unknown_keys(raw, ("universe", "start_date", "chunk_months"), "synced")
    fields = Fields("synced", raw)
    start = fields.day("start_date")
    if start is None:
        raise fields.error("start_date", "is required")
    return Synced(fields.text("universe"), start, fields.count("chunk_months", required=True))
