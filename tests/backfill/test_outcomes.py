"""Pure: a chunk's scraper summary -> StepOutcome -> progress (``steps.chunk_outcome`` and
``progress.apply_outcome``), the failure rules per kind, and the scrub of every recorded message.
No store, no server: these are the rules the run loop applies after each step."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from stockpipe.backfill import progress as prog
from stockpipe.backfill.steps import StepOutcome, chunk_outcome, failure_kind
from stockpipe.errors import FailureKind, forget_secrets, parks_at_once, register_secret, stops_run

NOW = datetime(2024, 6, 14, 22, 0, tzinfo=UTC)
TODAY = date(2024, 6, 14)
START = date(2000, 1, 1)
CHUNK = prog.Work("AAPL", "chunk", date(2024, 1, 2), date(2024, 6, 14))
TOKEN = "tok-SECRET-5e1f0c2d9a"


@pytest.fixture
def secret() -> Iterator[str]:
    """The token as the Tiingo client registers it where it is resolved."""
    register_secret(TOKEN)
    yield TOKEN
    forget_secrets()


def planned() -> prog.Progress:
    state = prog.record_metadata(
        prog.Progress(),
        "AAPL",
        date(2024, 1, 2),
        backfill_start=START,
        plan_day=TODAY,
        requests=1,
        owner="a",
        now=NOW,
    )
    return prog.claim(state, CHUNK, owner="a", now=NOW, lease_seconds=60)


PLANNING = prog.Planning(chunk_months=6, backfill_start=START, plan_day=TODAY)


def apply(state: prog.Progress, outcome: StepOutcome, max_attempts: int = 3) -> prog.Progress:
    return prog.apply_outcome(
        state, outcome, owner="a", now=NOW, max_attempts=max_attempts, planning=PLANNING
    )


def summary(succeeded: dict[str, Any], failed: dict[str, Any], requests: Any = 1) -> dict[str, Any]:
    return {"mode": "range", "succeeded": succeeded, "failed": failed, "requests": requests}


# ---------------------------------------------------------------- summary -> outcome


@pytest.mark.parametrize(
    ("answer", "ok", "kind", "requests", "rows"),
    [
        (summary({"AAPL": {"rows": 115}}, {}), True, None, 1, 115),
        (summary({"AAPL": {"rows": 0}}, {}), False, FailureKind.EMPTY, 1, 0),  # [] for trading days
        (
            summary({}, {"AAPL": {"error": "server", "message": "HTTP 500"}}, 5),
            False,
            FailureKind.SERVER,
            5,
            0,
        ),
        (
            summary({}, {"AAPL": {"error": "network", "message": "no route"}}, 0),
            False,
            FailureKind.NETWORK,
            0,
            0,
        ),
        (summary({}, {"AAPL": {"error": "store", "message": "bad key"}}), False, FailureKind.STORE, 1, 0),
        (summary({}, {"AAPL": {"error": "brand-new", "message": "?"}}), False, FailureKind.ERROR, 1, 0),
        (summary({}, {}), False, FailureKind.BAD_SUMMARY, 1, 0),  # the ticker is missing
        (summary({"AAPL": {"rows": 3}}, {}, requests=None), True, None, 5, 3),  # no count: the worst case
        (summary({"AAPL": {"rows": 3}}, {}, requests=True), True, None, 5, 3),
    ],
)
def test_chunk_outcome(
    answer: dict[str, Any], ok: bool, kind: FailureKind | None, requests: int, rows: int
) -> None:
    outcome = chunk_outcome(CHUNK, answer, reserve=5)
    assert (outcome.ok, outcome.error_kind, outcome.requests, outcome.rows) == (ok, kind, requests, rows)


def test_an_empty_chunk_without_trading_days_is_done() -> None:
    weekend = prog.Work("AAPL", "chunk", date(2024, 6, 8), date(2024, 6, 9))
    assert chunk_outcome(weekend, summary({"AAPL": {"rows": 0}}, {}), reserve=5).ok


def test_failure_kind_keeps_the_vocabulary() -> None:
    assert failure_kind("rate_limited") is FailureKind.RATE_LIMITED
    assert failure_kind(None) is FailureKind.ERROR
    assert failure_kind(["x"]) is FailureKind.ERROR


# ---------------------------------------------------------------- outcome -> progress


def test_a_good_chunk_advances_and_drops_the_lease() -> None:
    state = apply(planned(), chunk_outcome(CHUNK, summary({"AAPL": {"rows": 115}}, {}), reserve=5))
    record = state.get("AAPL")
    assert record is not None
    assert (record.done, record.rows, record.lease, record.requests) == (True, 115, None, 2)


@pytest.mark.parametrize("kind", [k for k in FailureKind if k is not FailureKind.EMPTY])
def test_each_failure_kind_follows_the_rules(kind: FailureKind) -> None:
    """Stopping failures never count as an attempt nor park; not_found parks at once; others count."""
    outcome = StepOutcome.failed(
        CHUNK, kind, f"{kind} happened", requests=0 if kind == FailureKind.NETWORK else 1
    )
    record = apply(planned(), outcome, max_attempts=2).get("AAPL")
    assert record is not None
    assert record.last_error == f"{kind}: {kind} happened"
    assert record.lease is None
    assert record.next_start == CHUNK.start  # nothing moved on
    if stops_run(kind):
        assert (record.attempts, record.parked) == (0, False)
    else:
        assert record.attempts == 1
        assert record.parked == parks_at_once(kind)


def test_network_failures_never_park_however_often() -> None:
    state = planned()
    for _ in range(10):
        state = apply(
            state, StepOutcome.failed(CHUNK, FailureKind.NETWORK, "cannot reach api.tiingo.com", requests=0)
        )
    record = state.get("AAPL")
    assert record is not None
    assert (record.attempts, record.parked, record.requests) == (0, False, 1)  # the metadata request only
    assert stops_run(FailureKind.NETWORK)


def test_metadata_outcomes_plan_or_park() -> None:
    lookup = prog.Work("NEW", "metadata")
    state = apply(prog.Progress(), StepOutcome(lookup, 1, ok=True, first_date=date(2024, 3, 1)))
    record = state.get("NEW")
    assert record is not None
    assert (record.start, record.end, record.next_start) == (date(2024, 3, 1), TODAY, date(2024, 3, 1))
    state = apply(prog.Progress(), StepOutcome.failed(lookup, FailureKind.NOT_FOUND, "404", requests=1))
    assert prog.ticker_state(state.get("NEW")) == "parked"


def test_a_delisted_ticker_before_the_start_keeps_where_its_history_ends() -> None:
    """Nothing to fetch, but ``end`` is its last price: a start moved earlier later knows where to stop."""
    lookup = prog.Work("OLD", "metadata")
    outcome = StepOutcome(lookup, 1, ok=True, first_date=date(1990, 1, 2), last_date=date(1995, 6, 30))
    state = apply(prog.Progress(), outcome)
    record = state.get("OLD")
    assert record is not None
    assert (record.done, record.start, record.end) == (True, None, date(1995, 6, 30))


# ---------------------------------------------------------------- secrets


def test_messages_are_scrubbed_before_they_are_recorded(secret: str) -> None:
    outcome = StepOutcome.failed(
        CHUNK, FailureKind.BAD_PAYLOAD, f"malformed startDate 'Token {secret}'", requests=1
    )
    assert secret not in outcome.message
    assert "***" in outcome.message
    record = apply(planned(), outcome).get("AAPL")
    assert record is not None
    assert record.last_error is not None
    assert secret not in record.last_error
    assert secret.lower() not in prog.to_json(apply(planned(), outcome)).decode().lower()


@pytest.mark.parametrize("offset", range(270, 310, 3))
def test_a_token_straddling_the_cut_leaks_no_prefix(secret: str, offset: int) -> None:
    """The message is scrubbed first and cut after (a cut first would leave the token's first letters)."""
    message = "x" * offset + secret.upper() + " and more"
    record = apply(planned(), StepOutcome(CHUNK, 1, ok=False, error_kind=FailureKind.SERVER, message=message))
    recorded = record.get("AAPL").last_error  # type: ignore[union-attr]
    assert recorded is not None
    assert len(recorded) <= prog.MAX_ERROR_CHARS
    assert secret[:6].lower() not in recorded.lower()
