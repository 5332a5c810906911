"""The sliding-window limiter, on a fake clock (no real waiting)."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockpipe.ratelimit import RateLimiter
from tests.threads import run_concurrently


class FakeClock:
    """A clock that only moves when the limiter sleeps (or the test advances it)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def test_allows_limit_then_blocks_until_the_oldest_leaves_the_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, 10.0, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        limiter.acquire()
    assert clock.sleeps == []
    assert limiter.try_acquire() is False
    limiter.acquire()
    assert clock.sleeps == [pytest.approx(10.0)]
    assert clock.now == pytest.approx(1010.0)


def test_try_acquire_never_sleeps_and_recovers_as_time_passes() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, 60.0, clock=clock, sleep=clock.sleep)
    assert limiter.try_acquire()  # t=1000
    clock.now += 30
    assert limiter.try_acquire()  # t=1030
    assert not limiter.try_acquire()
    clock.now += 29.9
    assert not limiter.try_acquire()
    clock.now += 0.1  # t=1060: the first acquisition left the window
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    clock.now += 29.9
    assert not limiter.try_acquire()
    assert clock.sleeps == []


def test_sliding_not_fixed_window() -> None:
    """Spread acquisitions free slots one by one, not all at a boundary."""
    clock = FakeClock(0.0)
    limiter = RateLimiter(2, 10.0, clock=clock, sleep=clock.sleep)
    limiter.acquire()  # t=0
    clock.now = 6.0
    limiter.acquire()  # t=6
    clock.now = 10.0
    assert limiter.try_acquire()  # t=0 is no longer inside [0.0+, 10.0)
    assert not limiter.try_acquire()  # t=6 and t=10 are both inside (6, 16)
    clock.now = 16.0
    assert limiter.try_acquire()


def test_per_hour_and_validation() -> None:
    limiter = RateLimiter.per_hour(50)
    assert (limiter.limit, limiter.window) == (50, 3600.0)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            RateLimiter(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="window"):
        RateLimiter(1, 0)


def test_threads_share_the_budget() -> None:
    clock = FakeClock()
    limiter = RateLimiter(5, 100.0, clock=clock, sleep=lambda s: None)
    results: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        ok = limiter.try_acquire()
        with lock:
            results.append(ok)

    run_concurrently([worker] * 40)
    assert results.count(True) == 5


@settings(max_examples=100, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=8),
    window=st.floats(min_value=0.5, max_value=100.0),
    gaps=st.lists(st.floats(min_value=0.0, max_value=30.0), min_size=1, max_size=60),
    use_try=st.lists(st.booleans(), min_size=60, max_size=60),
)
def test_no_window_ever_holds_more_than_limit(
    limit: int, window: float, gaps: list[float], use_try: list[bool]
) -> None:
    clock = FakeClock(0.0)
    limiter = RateLimiter(limit, window, clock=clock, sleep=clock.sleep)
    granted: list[float] = []
    for gap, non_blocking in zip(gaps, use_try, strict=False):
        clock.now += gap
        if non_blocking:
            if limiter.try_acquire():
                granted.append(clock.now)
        else:
            limiter.acquire()
            granted.append(clock.now)
    # Any interval [t, t + window) holds at most `limit`: acquisitions i and i+limit are >= window apart.
    for i in range(len(granted) - limit):
        assert granted[i + limit] - granted[i] >= window - 1e-9
    # And blocking never waits longer than needed: each sleep ends exactly when a slot frees up.
    assert all(s <= window + 1e-9 for s in clock.sleeps)


def test_max_wait_raises_instead_of_sleeping_out_the_window() -> None:
    from stockpipe.errors import RateLimitError

    clock = FakeClock()
    limiter = RateLimiter(2, 3600.0, clock=clock, sleep=clock.sleep)
    limiter.acquire(max_wait=60)
    limiter.acquire(max_wait=60)
    with pytest.raises(RateLimitError, match="2 requests per 3600 s") as caught:
        limiter.acquire(max_wait=60)
    assert caught.value.retry_after == pytest.approx(3600.0)
    assert clock.sleeps == []  # gave up at once, no partial wait
    clock.now += 3600
    limiter.acquire(max_wait=60)  # the window moved on


def test_a_slot_given_back_is_free_again_at_once() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, 3600.0, clock=clock, sleep=clock.sleep)
    first = limiter.acquire()
    limiter.acquire()
    limiter.give_back(first)  # its request never left
    limiter.acquire(max_wait=0)
    assert clock.sleeps == []
    assert limiter.try_acquire() is False


@settings(max_examples=100, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=6),
    steps=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=20.0), st.booleans(), st.integers(0, 5)),
        min_size=1,
        max_size=50,
    ),
)
def test_giving_back_never_lets_a_window_hold_more_than_limit_kept_slots(limit, steps) -> None:
    """Slots given back late (after other acquisitions) never break the window rule for the requests
    that were really sent."""
    window = 10.0
    clock = FakeClock(0.0)
    limiter = RateLimiter(limit, window, clock=clock, sleep=clock.sleep)
    kept: list = []
    for gap, give_back, which in steps:
        clock.now += gap
        kept.append(limiter.acquire())
        if give_back:
            slot = kept.pop(max(0, len(kept) - 1 - which))
            limiter.give_back(slot)
    times = sorted(slot.time for slot in kept)
    for i in range(len(times) - limit):
        assert times[i + limit] - times[i] >= window - 1e-9


def test_available_counts_the_slots_free_now() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, 10.0, clock=clock, sleep=clock.sleep)
    assert limiter.available() == 3
    limiter.acquire()
    clock.now += 4
    limiter.acquire()
    assert limiter.available() == 1
    clock.now += 6  # the first acquisition leaves the window
    assert limiter.available() == 2
    assert limiter.try_acquire()
    assert limiter.try_acquire()
    assert limiter.available() == 0
