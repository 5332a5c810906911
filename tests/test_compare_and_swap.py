"""The one compare-and-swap loop (objectstore.compare_and_swap) and the two stores that supply it one
attempt each: same parameters, same backoff, the same give-up error, each store's give-up tested over
moto S3 and a local directory."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from stockpipe.backfill import progress as prog
from stockpipe.backfill.progress_store import ProgressStore
from stockpipe.errors import ContentionError, PreconditionFailed, StoreError
from stockpipe.objectstore import (
    BACKOFF_BASE_SECONDS,
    BACKOFF_MAX_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
    LocalObjectStore,
    ObjectStore,
    S3ObjectStore,
    compare_and_swap,
)
from stockpipe.prices import rows_to_table
from stockpipe.pricestore import PriceStore, object_key
from tests.fakes import HookedStore
from tests.tiingo_standin import bar

FETCHED = datetime(2024, 6, 14, 22, 0, tzinfo=UTC)


def test_the_loop_retries_lost_races_with_bounded_jittered_backoff():
    sleeps: list[float] = []
    calls: list[int] = []

    def attempt(lost: int) -> str:
        calls.append(lost)
        if lost < 12:
            raise PreconditionFailed("lost")
        return "written"

    assert compare_and_swap(attempt, what="x", max_attempts=13, sleep=sleeps.append) == "written"
    assert calls == list(range(13))
    assert len(sleeps) == 12
    assert all(0 <= s <= min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2**i) for i, s in enumerate(sleeps))


def test_the_loop_gives_up_without_a_last_sleep_and_names_the_object():
    sleeps: list[float] = []

    def attempt(lost: int) -> None:
        raise PreconditionFailed("lost")

    with pytest.raises(ContentionError, match=r"gave up writing s3://b/k: 3 attempts") as caught:
        compare_and_swap(attempt, what="s3://b/k", max_attempts=3, sleep=sleeps.append)
    assert len(sleeps) == 2  # between attempts only
    assert isinstance(caught.value, StoreError)
    assert not isinstance(caught.value, PreconditionFailed)  # an outer retry-on-race must not retry it
    assert caught.value.kind == "store"


def test_anything_else_ends_the_loop_at_once():
    def attempt(lost: int) -> None:
        raise StoreError("disk full")

    sleeps: list[float] = []
    with pytest.raises(StoreError, match="disk full"):
        compare_and_swap(attempt, what="x", sleep=sleeps.append)
    assert sleeps == []
    with pytest.raises(ValueError, match="max_attempts"):
        compare_and_swap(attempt, what="x", max_attempts=0)


def always_loses(store: ObjectStore) -> HookedStore:
    """A real store whose conditional writes always lose the race, as under a hot competing writer."""

    def lose(operation: str, key: str) -> None:
        if operation == "put":
            raise PreconditionFailed(f"{key} changed")

    return HookedStore(store, lose)


@pytest.fixture(params=["s3", "local"])
def store(request, tmp_path):
    if request.param == "s3":
        return S3ObjectStore(request.getfixturevalue("bucket"), request.getfixturevalue("s3_client"))
    return LocalObjectStore(tmp_path / "data")


def test_both_stores_take_the_same_parameters_and_default():
    for cls in (PriceStore, ProgressStore):
        instance = cls(LocalObjectStore("/nonexistent"))
        assert (instance.max_attempts, callable(instance.sleep)) == (DEFAULT_MAX_ATTEMPTS, True)


def test_price_store_gives_up_after_max_attempts(store):
    losing = always_loses(store)
    sleeps: list[float] = []
    prices = PriceStore(losing, max_attempts=4, sleep=sleeps.append)
    with pytest.raises(ContentionError, match=r"ticker=AAPL/year=2024/data\.parquet: 4 attempts"):
        prices.upsert("AAPL", rows_to_table([bar(date(2024, 6, 3))]), fetched_at=FETCHED)
    assert (losing.count("put", prefix="prices/daily/"), len(sleeps)) == (4, 3)
    assert store.get(object_key("AAPL", 2024)) is None


def test_progress_store_gives_up_after_max_attempts(store):
    ProgressStore(store).update("A", lambda p: p.with_ticker("A", prog.TickerProgress(attempts=1)))
    before = store.get("backfill/tickers/A.json")
    losing = always_loses(store)
    sleeps: list[float] = []
    progress = ProgressStore(losing, max_attempts=4, sleep=sleeps.append)
    with pytest.raises(ContentionError, match=r"backfill/tickers/A\.json: 4 attempts"):
        progress.update("A", lambda p: p.with_ticker("A", prog.TickerProgress(attempts=2)))
    assert (losing.count("put"), len(sleeps)) == (4, 3)
    assert store.get("backfill/tickers/A.json") == before


def test_a_stale_known_copy_is_confirmed_without_a_wait(store):
    """The catch-up's copy of a year object says "nothing new"; the store is asked before skipping,
    and that confirmation is not a lost race (no backoff)."""
    prices = PriceStore(store, sleep=lambda s: pytest.fail("slept"))
    rows = rows_to_table([bar(date(2024, 6, 3)), bar(date(2024, 6, 4))])
    prices.upsert("KO", rows.slice(0, 1), fetched_at=FETCHED)
    stale = prices.read_year("KO", 2024)
    prices.upsert("KO", rows, fetched_at=FETCHED)  # another writer adds 06-04
    newer = store.get(object_key("KO", 2024)).version
    prices.upsert("KO", rows.slice(0, 1), fetched_at=FETCHED, known={2024: stale})
    assert store.get(object_key("KO", 2024)).version == newer  # nothing new: no new version
    assert prices.read_ticker("KO").num_rows == 2
