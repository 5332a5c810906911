"""Test doubles shared by the tests: a real store seen through hooks, a settable clock, price tables.

``HookedStore`` delegates every call to a real ``ObjectStore`` (moto S3 or a directory) and lets a test
watch or interfere: it counts calls per operation and key, and runs a hook before each call, which may
raise (a lost race, a crash) or do something first (another writer). Nothing is re-implemented, so the
store under it keeps its real compare-and-swap behaviour.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pyarrow as pa

from stockpipe.objectstore import DelegatingStore, ObjectStore, StoredObject
from stockpipe.prices import PRICE_SCHEMA, TIINGO_KEYS

Hook = Callable[[str, str], None]  # (operation: "get" | "put" | "list", key or prefix)


class HookedStore(DelegatingStore):
    """A real store behind hooks; ``calls`` counts ``(operation, key)``, thread-safely."""

    def __init__(self, inner: ObjectStore, hook: Hook | None = None) -> None:
        super().__init__(inner)
        self.hook = hook
        self.calls: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def _before(self, operation: str, key: str) -> None:
        with self._lock:
            self.calls[(operation, key)] += 1
        if self.hook is not None:
            self.hook(operation, key)

    def count(self, operation: str | None = None, *, prefix: str = "") -> int:
        """Calls of ``operation`` (all when None) on keys starting with ``prefix``."""
        with self._lock:
            return sum(
                n
                for (op, key), n in self.calls.items()
                if (operation is None or op == operation) and key.startswith(prefix)
            )

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()

    def get(self, key: str) -> StoredObject | None:
        self._before("get", key)
        return super().get(key)

    def put(
        self,
        key: str,
        body: bytes,
        *,
        expected_version: str | None,
        content_type: str = "application/octet-stream",
    ) -> str:
        self._before("put", key)
        return super().put(key, body, expected_version=expected_version, content_type=content_type)

    def list_keys(self, prefix: str) -> Iterator[str]:
        self._before("list", prefix)
        return super().list_keys(prefix)

    def __getattr__(self, name: str) -> Any:  # e.g. S3ObjectStore.client for a test that deletes behind it
        return getattr(self.inner, name)


class SleepRecorder:
    """A ``sleep`` that records how long it was asked to wait and returns at once (thread-safe)."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self._lock:
            self.calls.append(seconds)


class Clock:
    """A settable clock: ``clock()`` returns ``now``; tests move it instead of sleeping.

    ``now`` is a number (monotonic seconds) or a datetime (UTC wall time: leases expire by moving it).
    """

    def __init__(self, now: Any = 0.0) -> None:
        self.now = now

    def __call__(self) -> Any:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds) if isinstance(self.now, datetime) else seconds


def weekdays(start: date, count: int) -> list[date]:
    out, day = [], start
    while len(out) < count:
        if day.weekday() < 5:
            out.append(day)
        day += timedelta(days=1)
    return out


def bars(days: list[date], close: float = 10.0) -> pa.Table:
    """A PRICE_SCHEMA table for ``days``: no split, no dividend, closes rising by 0.01 from ``close``."""
    n = len(days)
    columns = {"date": pa.array(days, pa.date32())}
    for field in PRICE_SCHEMA:
        if field.name == "date":
            continue
        if field.name == "volume":
            columns["volume"] = pa.array([1000 + i for i in range(n)], pa.int64())
        elif field.name == "split_factor":
            columns[field.name] = pa.array([1.0] * n)
        elif field.name == "div_cash":
            columns[field.name] = pa.array([0.0] * n)
        else:
            columns[field.name] = pa.array([close + i * 0.01 for i in range(n)])
    return pa.table(columns, schema=PRICE_SCHEMA)


# The retries the Tiingo client tests give their client (tests/tiingo/conftest.py).
CLIENT_MAX_RETRIES = 3


def expected_table(rows: list[dict]) -> dict[str, list]:
    """Tiingo JSON rows as the stored columns (``Table.to_pydict()`` form), for exact comparisons."""
    out: dict[str, list] = {"date": [date.fromisoformat(r["date"][:10]) for r in rows]}
    for name, key in TIINGO_KEYS.items():
        out[name] = [r[key] for r in rows]
    return out
