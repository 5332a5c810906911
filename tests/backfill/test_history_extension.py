"""History that extends (issue 11): a start date moved earlier plans and fetches only the missing earlier
range; finished ranges cost nothing; a start date moved later changes nothing; one after today is refused.

Pure transitions first (with a hypothesis property), then the orchestrator over moto with the fake
scraper (status before the run, the exact requests of the run, the stored history)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockpipe.backfill import progress as prog
from stockpipe.backfill.plan import ONE_DAY
from stockpipe.backfill.settings import BackfillSettings
from stockpipe.pricestore import PriceStore
from stockpipe.universe import save_universe
from tests.backfill.backfill_fakes import KNOWN, TODAY, World, expected_days

NOW = datetime(2024, 6, 14, 22, 0, tzinfo=UTC)
FIRST = date(2010, 1, 4)  # the ticker's first price in Tiingo


def next_work(state: prog.Progress, chunk_months: int = 6) -> prog.Work | None:
    """One chunk per request (these tests follow the chunk grid; requests may cover several)."""
    planning = prog.Planning(chunk_months=chunk_months, backfill_start=FIRST, plan_day=TODAY, max_chunks=1)
    return prog.next_work(state, "T", planning=planning, now=NOW)


def planned(start: date, *, chunk_months: int = 6, finish: bool = True) -> prog.Progress:
    state = prog.record_metadata(
        prog.Progress(), "T", FIRST, backfill_start=start, plan_day=TODAY, requests=1, owner="a", now=NOW
    )
    while finish and (work := next_work(state, chunk_months)) is not None:
        state = complete(state, work)
    return state


def complete(state: prog.Progress, work: prog.Work) -> prog.Progress:
    assert work.start is not None
    assert work.end is not None
    return prog.record_chunk(state, "T", work.start, work.end, rows=1, requests=1, owner="a", now=NOW)


def test_a_done_ticker_reopens_for_the_earlier_range_only() -> None:
    state = planned(date(2020, 1, 1))
    extended = prog.extend_history(state, ["T"], backfill_start=date(2018, 1, 1), now=NOW)
    record = extended.get("T")
    assert record is not None
    assert (record.start, record.fetched_from, record.next_start, record.done) == (
        date(2018, 1, 1),
        date(2020, 1, 1),
        None,
        False,
    )
    assert prog.ticker_state(record) == "in_progress"
    assert prog.chunks_left(record, 6) == 4
    works = []
    while (work := next_work(extended)) is not None:
        works.append((work.start, work.end))
        extended = complete(extended, work)
    assert works == [  # backwards from the fetched range, on the grid of the new start
        (date(2019, 7, 1), date(2019, 12, 31)),
        (date(2019, 1, 1), date(2019, 6, 30)),
        (date(2018, 7, 1), date(2018, 12, 31)),
        (date(2018, 1, 1), date(2018, 6, 30)),
    ]
    done = extended.get("T")
    assert done is not None
    assert (done.done, done.fetched_from, done.start, done.end) == (True, None, date(2018, 1, 1), TODAY)
    assert prog.from_json(prog.to_json(extended)) == extended


def test_an_unfinished_ticker_finishes_its_range_then_fetches_the_earlier_one() -> None:
    state = planned(date(2020, 1, 1), finish=False)
    work = next_work(state)
    assert work is not None
    state = complete(state, work)  # 2020-01-01..2020-06-30 fetched
    extended = prog.extend_history(state, ["T"], backfill_start=date(2019, 1, 1), now=NOW)
    record = extended.get("T")
    assert record is not None
    assert (record.fetched_from, record.next_start) == (date(2020, 1, 1), date(2020, 7, 1))
    assert prog.chunks_left(record, 6) == 8 + 2
    assert next_work(extended) == prog.Work("T", "chunk", date(2020, 7, 1), date(2020, 12, 31))


@pytest.mark.parametrize(
    ("start", "why"),
    [
        (date(2021, 1, 1), "moved later"),
        (date(2020, 1, 1), "unchanged"),
        (date(2005, 1, 1), "before the first price"),
    ],
)
def test_nothing_changes_when_nothing_earlier_can_be_fetched(start: date, why: str) -> None:
    state = planned(max(date(2020, 1, 1), FIRST) if why != "before the first price" else FIRST)
    assert prog.to_json(prog.extend_history(state, ["T"], backfill_start=start, now=NOW)) == prog.to_json(
        state
    )


def test_a_ticker_without_prices_stays_done() -> None:
    state = prog.record_metadata(
        prog.Progress(),
        "T",
        None,
        backfill_start=date(2020, 1, 1),
        plan_day=TODAY,
        requests=1,
        owner="a",
        now=NOW,
    )
    assert prog.extend_history(state, ["T"], backfill_start=date(1990, 1, 1), now=NOW) == state


def test_a_delisted_ticker_outside_the_old_range_gets_its_history() -> None:
    state = prog.record_metadata(
        prog.Progress(),
        "OLD",
        date(1995, 1, 3),
        last_date=date(1999, 12, 31),
        backfill_start=date(2000, 1, 1),
        plan_day=TODAY,
        requests=1,
        owner="a",
        now=NOW,
    )
    assert prog.ticker_state(state.get("OLD")) == "done"
    extended = prog.extend_history(state, ["OLD"], backfill_start=date(1998, 1, 1), now=NOW)
    record = extended.get("OLD")
    assert record is not None
    assert (record.start, record.next_start, record.end) == (
        date(1998, 1, 1),
        date(1998, 1, 1),
        date(1999, 12, 31),
    )


@settings(max_examples=200, deadline=None)
@given(
    moves=st.lists(
        st.tuples(
            st.integers(0, 8), st.integers(2005, 2023)
        ),  # (chunks done before the move, new start year)
        max_size=4,
    ),
    chunk_months=st.sampled_from([0, 3, 6, 12]),
)
def test_any_start_moves_fetch_every_day_once(moves: list[tuple[int, int]], chunk_months: int) -> None:
    """Whatever the moves and however far each got: no day is fetched twice, the fetched days are one
    range, and at the end they are exactly ``[max(earliest start, first price), end]``."""
    start = date(2020, 1, 1)
    state = planned(start, chunk_months=chunk_months, finish=False)
    fetched: set[date] = set()
    earliest = start

    def step() -> bool:
        nonlocal state
        work = next_work(state, chunk_months)
        if work is None:
            return False
        assert work.start is not None
        assert work.end is not None
        days = {work.start + timedelta(days=i) for i in range((work.end - work.start).days + 1)}
        assert not days & fetched  # finished ranges cost nothing
        fetched.update(days)
        state = complete(state, work)
        return True

    for steps, year in moves:
        for _ in range(steps):
            step()
        earliest = min(earliest, date(year, 1, 1))
        state = prog.extend_history(state, ["T"], backfill_start=date(year, 1, 1), now=NOW)
        assert prog.from_json(prog.to_json(state)) == state  # every state is a valid progress.json
    while step():
        pass
    first, last = max(earliest, FIRST), TODAY
    assert fetched == {first + timedelta(days=i) for i in range((last - first).days + 1)}
    record = state.get("T")
    assert record is not None
    assert record.done
    assert (record.start, record.fetched_from, record.next_start) == (first, None, None)


# ---------------------------------------------------------------- over moto


def ticker_objects(world: World) -> dict[str, bytes]:
    keys = world.store.list_keys("backfill/tickers/")
    return {key: world.store.get(key).body for key in keys}  # type: ignore[union-attr]


def test_moving_the_start_earlier_fetches_only_the_missing_range(world: World) -> None:
    tickers = ["AAPL", "META", "NEWCO"]
    save_universe(world.store, tickers)  # status shows the universe as the scheduled run will see it
    first = world.orchestrator(start_date=date(2020, 1, 1)).run(tickers)
    assert first["stopped"] == "complete"
    calls = len(world.scraper.calls)
    spent = world.requests

    earlier = world.orchestrator(start_date=date(2018, 1, 1))
    stored = ticker_objects(world)
    answer = earlier.status()
    status = answer["tickers"]
    assert ticker_objects(world) == stored  # status shows the extension, changes no ticker's progress
    assert status["AAPL"]["state"] == "in_progress"
    assert (status["AAPL"]["start"], status["AAPL"]["fetched_from"]) == ("2018-01-01", "2020-01-01")
    assert status["AAPL"]["chunks_left"] == 4
    assert (answer["counts"]["in_progress"], answer["chunks_left"]) == (1, 4)  # the index counts it too
    # META and NEWCO: their first answer began after 2020's first trading day: nothing earlier exists
    assert status["META"]["state"] == "done"
    assert status["NEWCO"]["state"] == "done"

    summary = earlier.run(tickers)
    assert summary["stopped"] == "complete"
    new_calls = world.scraper.calls[calls:]
    assert new_calls == [("AAPL", date(2018, 1, 1), date(2019, 12, 31))]  # only what was missing, at once
    assert summary["requests"] == world.requests - spent == 1  # no metadata lookup either
    assert summary["chunks_done"] == 4
    prices = PriceStore(world.store)
    days = prices.read_ticker("AAPL").column("date").to_pylist()
    assert days == expected_days(KNOWN["AAPL"], date(2018, 1, 1))  # one gap-free history
    again = world.orchestrator(start_date=date(2018, 1, 1)).run(tickers)
    assert again["requests"] == 0


def test_moving_the_start_later_changes_nothing_stored(world: World) -> None:
    world.orchestrator(start_date=date(2020, 1, 1)).run(["AAPL"])
    before = ticker_objects(world)
    spent = world.requests
    summary = world.orchestrator(start_date=date(2023, 1, 1)).run(["AAPL"])
    assert summary["stopped"] == "complete"
    assert world.requests == spent
    assert ticker_objects(world) == before  # not even rewritten


def test_a_start_date_after_today_is_refused(world: World) -> None:
    with pytest.raises(ValueError, match=r"BACKFILL_START_DATE 2024-06-15 is after today \(2024-06-14\)"):
        world.orchestrator(start_date=TODAY + ONE_DAY).run(["AAPL"])
    assert list(world.store.list_keys("backfill/")) == []
    assert world.requests == 0
    with pytest.raises(ValueError, match="BACKFILL_START_DATE 2999-01-01 is after today"):
        BackfillSettings.from_env({"BACKFILL_START_DATE": "2999-01-01"})
    with pytest.raises(ValueError, match="after today"):
        BackfillSettings.from_env({"BACKFILL_START_DATE": "2024-06-15"}, today=TODAY)
    assert BackfillSettings.from_env({"BACKFILL_START_DATE": "2024-06-14"}, today=TODAY).start_date == TODAY
