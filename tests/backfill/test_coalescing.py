"""Pure: the fewest requests a backfill takes. A new ticker is asked for its whole range in one request,
an empty answer makes Tiingo's metadata decide (glitch or no prices there), and a failed request of
several chunks is split (halved) until one bad chunk is alone. No store, no server."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from stockpipe.backfill import progress as prog
from stockpipe.backfill.plan import count_chunks, iter_chunks
from stockpipe.backfill.steps import StepOutcome
from stockpipe.errors import FailureKind

NOW = datetime(2024, 6, 14, 22, 0, tzinfo=UTC)
TODAY = date(2024, 6, 14)
START = date(2000, 1, 1)
ALL = count_chunks(START, TODAY, 6)  # 49 six-month chunks


def planning(max_chunks: int = 0, start: date = START) -> prog.Planning:
    return prog.Planning(chunk_months=6, backfill_start=start, plan_day=TODAY, max_chunks=max_chunks)


def step(state: prog.Progress, ticker: str = "T", *, plan: prog.Planning | None = None) -> prog.Work:
    work = prog.next_work(state, ticker, planning=plan or planning(), now=NOW)
    assert work is not None
    return work


def answer(
    state: prog.Progress,
    outcome: StepOutcome,
    *,
    plan: prog.Planning | None = None,
    max_attempts: int = 3,
) -> prog.Progress:
    claimed = prog.claim(state, outcome.work, owner="run", now=NOW, lease_seconds=60)
    return prog.apply_outcome(
        claimed, outcome, owner="run", now=NOW, max_attempts=max_attempts, planning=plan or planning()
    )


def rows(work: prog.Work, first: date, last: date, n: int = 100) -> StepOutcome:
    return StepOutcome(work, 1, ok=True, rows=n, first_date=first, last_date=last)


def empty(work: prog.Work) -> StepOutcome:
    return StepOutcome.failed(work, FailureKind.EMPTY, "no rows", requests=1)


def lookup(work: prog.Work, first: date | None, last: date | None) -> StepOutcome:
    return StepOutcome(work, 1, ok=True, first_date=first, last_date=last)


# ---------------------------------------------------------------- one request, no metadata


def test_a_new_ticker_is_asked_for_its_whole_range_at_once() -> None:
    work = step(prog.Progress())
    assert (work.kind, work.start, work.end, work.chunks) == ("chunk", START, TODAY, ALL)
    capped = step(prog.Progress(), plan=planning(max_chunks=4))
    assert (capped.start, capped.end, capped.chunks) == (START, date(2001, 12, 31), 4)


def test_its_answer_fixes_the_plan_and_where_history_starts() -> None:
    work = step(prog.Progress())
    record = answer(prog.Progress(), rows(work, date(2010, 6, 29), date(2024, 6, 13))).get("T")
    assert record is not None
    assert (record.planned, record.done, record.start, record.end) == (True, True, START, TODAY)
    assert (record.chunks_done, record.requests, record.metadata) == (ALL, 1, None)
    assert record.first_date == date(2010, 6, 29)  # the first day seen (Tiingo's metadata not read)


def test_a_capped_walk_goes_on_where_the_last_request_ended() -> None:
    plan = planning(max_chunks=20)
    state = prog.Progress()
    requests = []
    while (work := prog.next_work(state, "T", planning=plan, now=NOW)) is not None:
        requests.append((work.start, work.end, work.chunks))
        state = answer(state, rows(work, work.start, work.end), plan=plan)  # type: ignore[arg-type]
    assert [r[2] for r in requests] == [20, 20, 9]
    assert requests[1][0] == date(2010, 1, 1)
    assert state.get("T").chunks_done == ALL  # type: ignore[union-attr]


# ---------------------------------------------------------------- an empty answer: the metadata decides


def test_an_empty_first_answer_asks_for_the_metadata_next() -> None:
    work = step(prog.Progress())
    state = answer(prog.Progress(), empty(work))
    record = state.get("T")
    assert record is not None
    assert (record.metadata, record.planned, record.attempts, record.parked) == ("due", False, 0, False)
    assert record.last_error is not None
    assert "metadata decides" in record.last_error
    assert step(state).kind == "metadata"
    assert prog.ticker_state(record) == "pending"


def test_the_metadata_plans_a_ticker_listed_after_the_start() -> None:
    state = answer(prog.Progress(), empty(step(prog.Progress(), plan=planning(max_chunks=2))))
    state = answer(state, lookup(step(state), date(2015, 3, 2), None))
    record = state.get("T")
    assert record is not None
    assert (record.metadata, record.start, record.end, record.next_start) == (
        "read",
        date(2015, 3, 2),
        TODAY,
        date(2015, 3, 2),
    )
    assert record.first_date == date(2015, 3, 2)
    assert record.last_error is None
    assert step(state).start == date(2015, 3, 2)


def test_the_metadata_ends_a_ticker_without_prices_in_the_range() -> None:
    """Delisted before the start: done at once, ``end`` = its last price (for a later, earlier start)."""
    state = answer(prog.Progress(), empty(step(prog.Progress())))
    state = answer(state, lookup(step(state), date(1990, 1, 2), date(1995, 6, 30)))
    record = state.get("T")
    assert record is not None
    assert (record.done, record.start, record.end, record.metadata) == (True, None, date(1995, 6, 30), "read")
    no_prices = answer(prog.Progress(), empty(step(prog.Progress())))
    no_prices = answer(no_prices, lookup(step(no_prices), None, None))
    assert no_prices.get("T").done
    assert no_prices.get("T").first_date is None


def test_a_glitch_is_asked_again_then_counted_and_accepted_as_a_gap() -> None:
    state = answer(
        prog.Progress(), empty(step(prog.Progress(), plan=planning(max_chunks=1))), plan=planning(1)
    )
    state = answer(state, lookup(step(state), date(1980, 12, 12), None))  # Tiingo has prices there
    record = state.get("T")
    assert record is not None
    assert (record.metadata, record.start, record.attempts) == ("read", START, 0)
    for attempt in (1, 2):
        state = answer(state, empty(step(state, plan=planning(1))), plan=planning(1))
        assert state.get("T").attempts == attempt  # type: ignore[union-attr]
    state = answer(state, empty(step(state, plan=planning(1))), plan=planning(1))
    record = state.get("T")
    assert record is not None
    assert (record.next_start, record.attempts) == (date(2000, 7, 1), 0)  # accepted as a gap
    assert "accepted as a gap" in (record.last_error or "")


def test_a_delisting_met_by_a_capped_walk_ends_the_plan_at_the_last_price() -> None:
    plan = planning(max_chunks=10)
    state = prog.Progress()
    work = step(state, plan=plan)
    state = answer(state, rows(work, date(2000, 1, 3), date(2004, 12, 31)), plan=plan)
    work = step(state, plan=plan)
    state = answer(state, rows(work, date(2005, 1, 3), date(2007, 3, 30)), plan=plan)
    work = step(state, plan=plan)
    state = answer(state, empty(work), plan=plan)
    state = answer(state, lookup(step(state, plan=plan), date(1995, 1, 3), date(2007, 3, 30)), plan=plan)
    record = state.get("T")
    assert record is not None
    assert (record.done, record.end, record.next_start) == (True, date(2009, 12, 31), None)
    assert prog.chunks_left(record, 6) == 0


# ---------------------------------------------------------------- a failed request of several chunks


def test_a_failed_request_is_halved_until_one_chunk_counts_as_an_attempt() -> None:
    state = prog.Progress()
    sizes = []
    for _ in range(12):
        work = prog.next_work(state, "T", planning=planning(), now=NOW)
        if work is None:
            break
        sizes.append(work.chunks)
        state = answer(state, StepOutcome.failed(work, FailureKind.FUNCTION_ERROR, "boom", requests=1))
    record = state.get("T")
    assert record is not None
    assert sizes == [ALL, 24, 12, 6, 3, 1, 1, 1]  # the last three count: parked after max_attempts
    assert (record.parked, record.attempts, record.max_chunks) == (True, 3, 1)
    assert record.requests == len(sizes)


def test_successes_double_the_request_again() -> None:
    state = answer(
        prog.Progress(), StepOutcome.failed(step(prog.Progress()), FailureKind.SERVER, "500", requests=5)
    )
    sizes = []
    while (work := prog.next_work(state, "T", planning=planning(), now=NOW)) is not None:
        sizes.append(work.chunks)
        state = answer(state, rows(work, work.start, work.end))  # type: ignore[arg-type]
    assert sizes == [24, 25]  # 49 chunks: half, then (doubled beyond what is left) the rest
    record = state.get("T")
    assert record is not None
    assert (record.done, record.max_chunks, record.chunks_done, record.attempts) == (True, 0, ALL, 0)


def test_stopping_failures_do_not_split_and_not_found_parks_at_once() -> None:
    work = step(prog.Progress())
    for kind in (FailureKind.RATE_LIMITED, FailureKind.AUTH, FailureKind.NETWORK):
        record = answer(prog.Progress(), StepOutcome.failed(work, kind, "stop", requests=0)).get("T")
        assert record is not None
        assert (record.max_chunks, record.attempts, record.parked) == (0, 0, False)
    parked = answer(prog.Progress(), StepOutcome.failed(work, FailureKind.NOT_FOUND, "404", requests=1)).get(
        "T"
    )
    assert parked is not None
    assert parked.parked


# ---------------------------------------------------------------- a start date moved earlier


def test_an_earlier_start_asks_for_the_added_range_in_one_request() -> None:
    work = step(prog.Progress())
    state = answer(prog.Progress(), rows(work, date(2000, 1, 3), TODAY))
    earlier = date(1990, 1, 1)
    state = prog.extend_history(state, ["T"], backfill_start=earlier, now=NOW)
    work = step(state, plan=planning(start=earlier))
    assert (work.start, work.end, work.chunks) == (earlier, date(1999, 12, 31), 20)
    # Tiingo has nothing before 2000: an empty answer, then the metadata closes the range
    state = answer(state, empty(work), plan=planning(start=earlier))
    state = answer(state, lookup(step(state, plan=planning(start=earlier)), date(2000, 1, 3), None))
    record = state.get("T")
    assert record is not None
    assert (record.done, record.start, record.fetched_from, record.metadata) == (True, START, None, "read")
    assert prog.extend_history(state, ["T"], backfill_start=date(1980, 1, 1), now=NOW) == state  # known now


# ---------------------------------------------------------------- property


@settings(max_examples=200, deadline=None)
@given(
    cap=st.sampled_from([0, 1, 3, 7]),
    failures=st.lists(st.booleans(), min_size=0, max_size=60),
)
def test_any_mix_of_failures_fetches_every_chunk_once_in_order(cap: int, failures: list[bool]) -> None:
    """Whatever fails (and is then split), the successful requests tile [start, end] exactly, in order."""
    plan = planning(max_chunks=cap)
    state, fetched, faults = prog.Progress(), [], iter(failures)
    for _ in range(400):
        work = prog.next_work(state, "T", planning=plan, now=NOW)
        if work is None:
            break
        assert work.start is not None
        assert work.end is not None
        if cap:
            assert work.chunks <= cap
        if next(faults, False):
            state = answer(
                state,
                StepOutcome.failed(work, FailureKind.SERVER, "500", requests=1),
                plan=plan,
                max_attempts=99,
            )
        else:
            fetched.append((work.start, work.end))
            state = answer(state, rows(work, work.start, work.end), plan=plan)
    record = state.get("T")
    assert record is not None
    assert record.done
    assert fetched[0][0] == START
    assert fetched[-1][1] == TODAY
    assert all(b[0] == a[1].fromordinal(a[1].toordinal() + 1) for a, b in itertools.pairwise(fetched))
    grid = {s for s, _ in iter_chunks(START, TODAY, 6)}
    assert all(start in grid for start, _ in fetched)  # requests start on the chunk grid
    assert record.chunks_done == ALL
