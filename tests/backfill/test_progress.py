"""Pure progress transitions (one chunk per request here: ``ONE``), the record's JSON, and the events."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockpipe.backfill import progress as prog
from stockpipe.backfill.events import ActionEvent, RunEvent, parse_event

NOW = datetime(2024, 6, 14, 12, 0, tzinfo=UTC)
TODAY = date(2024, 6, 14)
START = date(2000, 1, 1)
ONE = prog.Planning(chunk_months=6, backfill_start=START, plan_day=TODAY, max_chunks=1)


def next_work(state: prog.Progress, ticker: str, *, owner: str | None = None) -> prog.Work | None:
    return prog.next_work(state, ticker, planning=ONE, now=NOW, owner=owner)


def planned(ticker: str = "AAPL", first: date | None = date(2023, 1, 3)) -> prog.Progress:
    return prog.record_metadata(
        prog.Progress(), ticker, first, backfill_start=START, plan_day=TODAY, requests=1, owner="a", now=NOW
    )


def test_new_ticker_is_asked_for_its_range_and_a_metadata_plan_walks_chunks() -> None:
    empty = prog.Progress()
    assert next_work(empty, "AAPL") == prog.Work("AAPL", "chunk", START, date(2000, 6, 30), 1)
    state = planned()
    record = state.get("AAPL")
    assert record is not None
    assert (record.start, record.end, record.next_start, record.first_date) == (
        date(2023, 1, 3),
        TODAY,
        date(2023, 1, 3),
        date(2023, 1, 3),
    )
    assert not record.done
    assert record.requests == 1
    work = next_work(state, "AAPL")
    assert work == prog.Work("AAPL", "chunk", date(2023, 1, 3), date(2023, 7, 2))
    assert prog.chunks_left(record, 6) == 3


def test_metadata_without_prices_is_done_with_no_chunks() -> None:
    state = planned(first=None)
    record = state.get("AAPL")
    assert record is not None
    assert record.done
    assert prog.chunks_left(record, 6) == 0
    assert next_work(state, "AAPL") is None


def test_chunks_advance_to_done_and_replay_is_idempotent() -> None:
    state = planned()
    while (work := next_work(state, "AAPL")) is not None:
        state = prog.claim(state, work, owner="a", now=NOW, lease_seconds=60)
        assert work.start is not None
        assert work.end is not None
        after = prog.record_chunk(
            state, "AAPL", work.start, work.end, rows=100, requests=1, owner="a", now=NOW
        )
        # re-applying the same outcome (what a CAS retry does) changes nothing but the request count
        again = prog.record_chunk(
            after, "AAPL", work.start, work.end, rows=100, requests=0, owner="a", now=NOW
        )
        assert prog.to_json(again) == prog.to_json(after)
        state = after
    record = state.get("AAPL")
    assert record is not None
    assert record.done
    assert record.next_start is None
    assert record.chunks_done == 3
    assert record.rows == 300
    assert record.lease is None


def test_claim_rejections() -> None:
    state = planned()
    work = next_work(state, "AAPL")
    assert work is not None
    leased = prog.claim(state, work, owner="a", now=NOW, lease_seconds=60)
    with pytest.raises(prog.ClaimRejected, match="leased"):
        prog.claim(leased, work, owner="b", now=NOW, lease_seconds=60)
    assert next_work(leased, "AAPL", owner="b") is None
    # an expired lease (a crashed run) can be taken over
    later = NOW + timedelta(seconds=61)
    assert prog.claim(leased, work, owner="b", now=later, lease_seconds=60).get("AAPL").lease.owner == "b"  # type: ignore[union-attr]
    # a chunk the ticker already moved past cannot be claimed again
    assert work.start is not None
    assert work.end is not None
    moved = prog.record_chunk(leased, "AAPL", work.start, work.end, rows=1, requests=1, owner="a", now=NOW)
    with pytest.raises(prog.ClaimRejected, match="moved on"):
        prog.claim(moved, work, owner="a", now=NOW, lease_seconds=60)
    with pytest.raises(prog.ClaimRejected, match="needs no metadata"):
        prog.claim(moved, prog.Work("AAPL", "metadata"), owner="a", now=NOW, lease_seconds=60)


def test_failures_park_after_max_attempts_and_retry_unparks() -> None:
    state = planned()
    for attempt in range(1, 4):
        state = prog.record_failure(
            state, "AAPL", kind="server", message="500", requests=5, owner="a", now=NOW, max_attempts=3
        )
        record = state.get("AAPL")
        assert record is not None
        assert record.attempts == attempt
        assert record.parked == (attempt == 3)
    assert state.get("AAPL").last_error == "server: 500"  # type: ignore[union-attr]
    assert next_work(state, "AAPL") is None
    assert prog.ticker_state(state.get("AAPL")) == "parked"
    state = prog.retry(state, ["AAPL", "NOPE"], now=NOW)
    record = state.get("AAPL")
    assert record is not None
    assert (record.parked, record.attempts, record.last_error) == (False, 0, None)
    assert record.next_start == date(2023, 1, 3)  # the plan is kept
    assert "NOPE" not in state.tickers


def test_not_found_parks_at_once_and_global_failures_never_park() -> None:
    state = prog.record_failure(
        prog.Progress(),
        "XYZ",
        kind="not_found",
        message="404",
        requests=1,
        owner="a",
        now=NOW,
        max_attempts=5,
    )
    assert prog.ticker_state(state.get("XYZ")) == "parked"
    state = planned()
    for _ in range(10):
        state = prog.record_failure(
            state,
            "AAPL",
            kind="rate_limited",
            message="429",
            requests=1,
            owner="a",
            now=NOW,
            max_attempts=2,
            count_attempt=False,
        )
    record = state.get("AAPL")
    assert record is not None
    assert not record.parked
    assert record.attempts == 0
    assert record.last_error == "rate_limited: 429"


def test_reset_forgets_the_ticker() -> None:
    state = prog.reset(planned(), ["AAPL"])
    assert state.get("AAPL") is None
    assert next_work(state, "AAPL") == prog.Work("AAPL", "chunk", START, date(2000, 6, 30), 1)


def test_release_only_drops_own_lease() -> None:
    state = planned()
    work = next_work(state, "AAPL")
    assert work is not None
    leased = prog.claim(state, work, owner="a", now=NOW, lease_seconds=60)
    assert prog.release(leased, "AAPL", owner="b", now=NOW).get("AAPL").lease is not None  # type: ignore[union-attr]
    assert prog.release(leased, "AAPL", owner="a", now=NOW).get("AAPL").lease is None  # type: ignore[union-attr]


def test_summary_lists_universe_and_states() -> None:
    state = planned()
    state = prog.record_failure(
        state,
        "XYZ",
        kind="not_found",
        message="Ticker 'XYZ' not found",
        requests=1,
        owner="a",
        now=NOW,
        max_attempts=5,
    )
    summary = prog.summarize(state, ["AAPL", "MSFT", "XYZ"], chunk_months=6)
    assert summary["counts"] == {"done": 0, "in_progress": 1, "parked": 1, "pending": 1}
    assert summary["tickers"]["AAPL"]["chunks_left"] == 3
    assert summary["tickers"]["MSFT"] == {"state": "pending", "chunks_left": None}
    assert summary["tickers"]["XYZ"]["last_error"].startswith("not_found")
    assert summary["chunks_left"] == 3


def test_json_contract_round_trip() -> None:
    state = planned()
    work = next_work(state, "AAPL")
    assert work is not None
    state = prog.claim(state, work, owner="run-1", now=NOW, lease_seconds=60)
    body = prog.to_json(state)
    data = json.loads(body)
    assert data["version"] == 1
    record = data["tickers"]["AAPL"]
    for key in (
        "start",
        "end",
        "next_start",
        "done",
        "attempts",
        "last_error",
        "parked",
        "first_date",
        "updated_at",
    ):
        assert key in record
    assert record["start"] == "2023-01-03"
    assert record["lease"]["owner"] == "run-1"
    assert prog.to_json(prog.from_json(body)) == body


@given(st.lists(st.sampled_from(["ok", "fail", "nf", "retry", "reset"]), max_size=30))
def test_any_outcome_sequence_keeps_invariants(steps: list[str]) -> None:
    """Whatever happens, next_start stays inside [start, end] and done means nothing is left."""
    state = planned(first=date(2022, 1, 3))
    for step in steps:
        work = next_work(state, "AAPL")
        if step == "ok" and work is not None and work.kind == "chunk":
            assert work.start is not None
            assert work.end is not None
            state = prog.record_chunk(
                state, "AAPL", work.start, work.end, rows=1, requests=1, owner="a", now=NOW
            )
        elif step == "ok" and work is not None:
            state = prog.record_metadata(
                state,
                "AAPL",
                date(2022, 1, 3),
                backfill_start=START,
                plan_day=TODAY,
                requests=1,
                owner="a",
                now=NOW,
            )
        elif step in ("fail", "nf"):
            kind = "not_found" if step == "nf" else "server"
            state = prog.record_failure(
                state, "AAPL", kind=kind, message="x", requests=1, owner="a", now=NOW, max_attempts=3
            )
        elif step == "retry":
            state = prog.retry(state, ["AAPL"], now=NOW)
        else:
            state = prog.reset(state, ["AAPL"])
        record = state.get("AAPL")
        assert prog.to_json(prog.from_json(prog.to_json(state))) == prog.to_json(state)
        if record is not None and record.planned:
            assert record.start is not None
            assert record.end is not None
            if record.done:
                assert record.next_start is None
                assert prog.chunks_left(record, 6) == 0
            else:
                assert record.next_start is not None
                assert record.start <= record.next_start <= record.end


# ------------------------------------------------------------------ events


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({}, RunEvent()),
        (None, RunEvent()),
        ({"tickers": ["aapl", "brk.b"]}, RunEvent(("AAPL", "BRK-B"))),
        ({"action": "status"}, ActionEvent("status")),
        (
            {"action": "status", "state": "parked", "limit": 5, "page": "3f:MSFT"},
            ActionEvent("status", (), "parked", 5, ("3f", "MSFT")),
        ),
        ({"action": "status", "tickers": ["msft"]}, ActionEvent("status", ("MSFT",))),
        ({"action": "retry", "tickers": ["MSFT"]}, ActionEvent("retry", ("MSFT",))),
        ({"action": "reset", "tickers": ["MSFT", "msft"]}, ActionEvent("reset", ("MSFT",))),
        (
            {
                "version": "0",
                "id": "x",
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "detail": {},
            },
            RunEvent(),
        ),
    ],
)
def test_valid_events(event: object, expected: object) -> None:
    assert parse_event(event) == expected


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([], "must be a JSON object"),
        ({"action": "explode"}, "unknown action 'explode'"),
        ({"action": 3}, "unknown action"),
        ({"action": "status", "ticker": ["A"]}, "unknown key.*'ticker'.*status"),
        ({"action": "status", "state": "lost"}, "unknown state 'lost'"),
        ({"action": "status", "limit": 0}, "'limit' must be an integer from 1 to 1000"),
        ({"action": "status", "limit": True}, "'limit' must be"),
        ({"action": "status", "page": "AAPL"}, "'page' must be the 'next'"),
        ({"action": "status", "page": "3f:AAPL", "tickers": ["A"]}, "cannot be combined"),
        ({"action": "status", "tickers": ["A"] * 1001}, "at most 1,000"),
        ({"action": "retry"}, "needs 'tickers'"),
        ({"action": "reset", "tickers": []}, "non-empty list"),
        ({"action": "retry", "tickers": "AAPL"}, "non-empty list"),
        ({"tickers": ["AAPL"], "start_date": "2020-01-01"}, "unknown key.*'start_date'"),
        ({"tickers": ["AA PL"]}, "invalid ticker"),
        ({"tickers": []}, "non-empty list"),
        ({"tickers": ["A"] * 25_001}, "25,001 entries; at most 25,000"),
        ({"action": "retry", "tickers": ["A"] * 25_001}, "at most 25,000"),
    ],
)
def test_invalid_events_name_the_problem(event: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_event(event)


def test_a_delisted_tickers_plan_ends_at_its_last_price() -> None:
    state = prog.record_metadata(
        prog.Progress(),
        "OLD",
        date(2010, 1, 4),
        last_date=date(2012, 3, 30),
        backfill_start=START,
        plan_day=TODAY,
        requests=1,
        owner="a",
        now=NOW,
    )
    record = state.get("OLD")
    assert record is not None
    assert (record.start, record.end) == (date(2010, 1, 4), date(2012, 3, 30))


def test_an_empty_chunk_is_redone_then_accepted_as_a_gap_without_parking() -> None:
    state = planned()
    work = next_work(state, "AAPL")
    assert work is not None
    start, end = work.start, work.end
    for attempt in (1, 2):
        state = prog.record_empty_chunk(
            state, "AAPL", start, end, requests=1, owner="a", now=NOW, max_attempts=3
        )
        record = state.get("AAPL")
        assert record is not None
        assert (record.attempts, record.next_start, record.parked) == (attempt, start, False)
        assert record.last_error.startswith("empty: ")
    state = prog.record_empty_chunk(state, "AAPL", start, end, requests=1, owner="a", now=NOW, max_attempts=3)
    record = state.get("AAPL")
    assert record is not None
    assert record.next_start > end  # moved on: a real gap in Tiingo's data does not block the ticker
    assert not record.parked
    assert record.attempts == 0
    assert "accepted as a gap" in record.last_error
