"""Strict decoding of records and of the backfill/progress.json of earlier versions (version 1): a bad file
is one clear error naming the file and the field, and no run, status, retry or reset ever writes over it
(pure decoding here; over moto at the end: the migration never starts from a file it cannot read)."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from typing import Any

import pytest

from stockpipe.backfill import progress as prog
from stockpipe.backfill.progress_store import PROGRESS_KEY, ProgressStore
from stockpipe.errors import FailureKind, StoreError
from stockpipe.universe import save_universe
from tests.backfill.backfill_fakes import TODAY, World


def good_record(**changes: Any) -> dict[str, Any]:
    """A record exactly as to_json writes it (an in-progress, leased ticker), with ``changes``."""
    record = {
        "start": "2023-01-03",
        "end": "2024-06-14",
        "next_start": "2023-07-03",
        "done": False,
        "attempts": 1,
        "last_error": "server: HTTP 500",
        "parked": False,
        "first_date": "2023-01-03",
        "updated_at": "2024-06-14T22:00:00+00:00",
        "planned": True,
        "lease": {"owner": "host-1-abc", "expires": "2024-06-14T22:16:00+00:00", "start": None, "end": None},
        "chunks_done": 1,
        "rows": 124,
        "requests": 2,
    }
    record.update(changes)
    return record


def body(record: Any = None, **top: Any) -> bytes:
    data = {"version": 1, "tickers": {"AAPL": good_record() if record is None else record}}
    data.update(top)
    return json.dumps(data).encode()


def test_a_good_file_round_trips_byte_for_byte() -> None:
    raw = body()
    progress = prog.from_json(raw)
    record = progress.get("AAPL")
    assert record is not None
    assert record.lease is not None
    assert record.lease.expires == datetime(2024, 6, 14, 22, 16, tzinfo=UTC)
    assert prog.from_json(prog.to_json(progress)) == progress
    assert prog.to_json(prog.from_json(prog.to_json(progress))) == prog.to_json(progress)


def test_records_of_older_versions_still_read() -> None:
    """No "planned" key (written by hand or before it existed): planned when dated; absent counters are 0."""
    legacy = {"start": "2023-01-03", "end": "2024-06-14", "next_start": "2023-01-03", "done": False}
    record = prog.from_json(body(legacy)).get("AAPL")
    assert record is not None
    assert (record.planned, record.attempts, record.requests) == (True, 0, 0)


# Each case: the bad value and the field the error must name. The first three are the regressions of
# issue 9 ("done": "false" was read as done and rewritten as true; a naive lease raised TypeError;
# planned without end raised a bare AssertionError).
R = good_record
LEASE = "2024-06-14T22:16:00"
BAD_RECORDS = [
    ("done-string", R(done="false"), "done", "JSON boolean"),
    ("naive-lease", R(lease={"owner": "h-1-a", "expires": LEASE}), "lease.expires", "time zone"),
    ("planned-without-end", R(end=None), "end", "required when planned"),
    ("parked-number", R(parked=1), "parked", "JSON boolean"),
    ("planned-null", R(planned=None), "planned", "JSON boolean"),
    ("naive-updated-at", R(updated_at="2024-06-14T22:00:00"), "updated_at", "time zone"),
    ("date-as-updated-at", R(updated_at="2024-06-14"), "updated_at", "time zone"),
    ("garbage-timestamp", R(updated_at="yesterday"), "updated_at", "timestamp"),
    ("next-start-beyond-end", R(next_start="2024-06-16"), "next_start", "after end"),
    ("next-start-before-start", R(next_start="2022-01-03"), "next_start", "before start"),
    ("negative-attempts", R(attempts=-1), "attempts", "non-negative integer"),
    ("fractional-rows", R(rows=1.5), "rows", "non-negative integer"),
    ("boolean-requests", R(requests=True), "requests", "non-negative integer"),
    ("string-chunks", R(chunks_done="3"), "chunks_done", "non-negative integer"),
    ("bad-date", R(start="2020-13-01"), "start", "YYYY-MM-DD"),
    ("compact-date", R(first_date="20230103"), "first_date", "YYYY-MM-DD"),
    ("number-error", R(last_error=500), "last_error", "string"),
    ("lease-owner-missing", R(lease={"expires": LEASE + "+00:00"}), "lease.owner", "non-empty string"),
    ("lease-list", R(lease=[]), "lease", "object"),
    ("unknown-key", R(don=True), "", "unknown key(s) 'don'"),
    ("done-with-next-start", R(done=True, lease=None), "done", "still has days"),
    ("next-start-unplanned", R(planned=False, lease=None), "next_start", "planned is false"),
    ("fetched-from-before-start", R(fetched_from="2022-01-03"), "fetched_from", "after start"),
    (
        "fetched-from-past-next-start",
        R(start="2020-01-02", fetched_from="2024-01-02"),
        "fetched_from",
        "range",
    ),
    ("record-list", [], "", "must be an object"),
]


def field_of(suffix: str) -> str:
    return "tickers.AAPL" + (f".{suffix}" if suffix else "")


@pytest.mark.parametrize(
    ("record", "field", "problem"), [c[1:] for c in BAD_RECORDS], ids=[c[0] for c in BAD_RECORDS]
)
def test_a_bad_record_is_one_error_naming_the_field(record: Any, field: str, problem: str) -> None:
    field = field_of(field)
    with pytest.raises(prog.ProgressFormatError, match=re.escape(problem)) as caught:
        prog.from_json(body(record))
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field} ")


@pytest.mark.parametrize(
    ("raw", "field", "problem"),
    [
        (b"not json", "the file", "not valid JSON"),
        (b"[]", "the file", "must be a JSON object"),
        (b'{"version": 2, "tickers": {}}', "version", "must be 1, got the number 2"),
        (b'{"version": true, "tickers": {}}', "version", "must be 1, got true"),
        (b'{"version": "1", "tickers": {}}', "version", "must be 1"),
        (b'{"tickers": {}}', "version", "must be 1, got null"),
        (b'{"version": 1, "tickers": []}', "tickers", "must be an object, got an array"),
        (b'{"version": 1, "tickers": {}, "extra": 1}', "the file", "unknown key"),
    ],
)
def test_a_bad_file_is_one_error_naming_the_problem(raw: bytes, field: str, problem: str) -> None:
    with pytest.raises(prog.ProgressFormatError, match=re.escape(problem)) as caught:
        prog.from_json(raw)
    assert caught.value.field == field


def test_the_error_never_quotes_much_of_a_bad_value() -> None:
    with pytest.raises(prog.ProgressFormatError) as caught:
        prog.from_json(body(good_record(start="x" * 5000)))
    assert len(str(caught.value)) < 200


# ---------------------------------------------------------------- over moto: never rewritten


@pytest.mark.parametrize("case", BAD_RECORDS[:3], ids=[c[0] for c in BAD_RECORDS[:3]])
def test_no_entry_point_writes_over_a_bad_file(world: World, case: tuple[str, Any, str, str]) -> None:
    _, record, field, _ = case
    raw = body(record)
    world.store.put(PROGRESS_KEY, raw, expected_version=None)
    save_universe(world.store, ["AAPL"])
    orchestrator = world.orchestrator()
    for event in (
        {},
        {"action": "status"},
        {"action": "retry", "tickers": ["AAPL"]},
        {"action": "reset", "tickers": ["AAPL"]},
    ):
        with pytest.raises(StoreError) as caught:
            orchestrator.handle(event)
        message = str(caught.value)
        assert caught.value.kind == FailureKind.STORE
        assert world.store.describe(PROGRESS_KEY) in message  # the file ...
        assert field_of(field) in message  # ... and the field
        stored = world.store.get(PROGRESS_KEY)
        assert stored is not None
        assert stored.body == raw  # byte-identical
    assert world.requests == 0


def test_fixing_the_file_resumes_the_backfill(world: World) -> None:
    broken = good_record(
        done="false", lease=None, start="2024-01-02", first_date="2024-01-02", next_start="2024-01-02"
    )
    world.store.put(PROGRESS_KEY, body(broken), expected_version=None)
    with pytest.raises(StoreError, match=r"tickers\.AAPL\.done"):
        world.orchestrator().run(["AAPL"])
    world.store.put(
        PROGRESS_KEY, body({**broken, "done": False}), expected_version=world.store.get(PROGRESS_KEY).version
    )  # type: ignore[union-attr]
    fixed = world.store.get(PROGRESS_KEY)
    summary = world.orchestrator().run(["AAPL"])
    assert summary["stopped"] == "complete"
    assert world.scraper.calls == [("AAPL", date(2024, 1, 2), TODAY)]  # resumed where the file said
    assert ProgressStore(world.store).get("AAPL").done  # type: ignore[union-attr]
    assert world.store.get(PROGRESS_KEY) == fixed  # migrated, never written


def test_a_naive_timestamp_is_never_written() -> None:
    """What to_json writes, from_json reads: a naive clock fails at the write, not at every later read."""
    naive = prog.Progress({"AAPL": prog.TickerProgress(updated_at=datetime(2024, 6, 14, 22, 0))})
    with pytest.raises(ValueError, match="time zone"):
        prog.to_json(naive)
    aware = prog.Progress({"AAPL": prog.TickerProgress(updated_at=datetime(2024, 6, 14, 22, 0, tzinfo=UTC))})
    assert prog.from_json(prog.to_json(aware)) == aware
