"""What the backfill's stateful test breaks: hand edits a ticker's progress object can suffer, and an
invoker whose process dies before or after the scraper stored its data."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stockpipe import scraper
from stockpipe.objectstore import ObjectStore
from tests.backfill.backfill_fakes import Crash, MortalStore


@dataclass(frozen=True)
class Broken:
    """An object changed by hand: its good and bad bodies, and the field the error must name."""

    key: str
    good: bytes
    bad: bytes
    version: str
    field: str

    @classmethod
    def make(cls, store: ObjectStore, key: str, corrupt: Callable[[dict[str, Any]], str]) -> Broken:
        original = store.get(key)
        assert original is not None
        data = json.loads(original.body)
        field = corrupt(data)
        bad = json.dumps(data).encode()
        return cls(key, original.body, bad, store.put(key, bad, expected_version=original.version), field)

    def assert_untouched(self, store: ObjectStore) -> None:
        stored = store.get(self.key)
        assert stored is not None
        assert stored.body == self.bad  # never rewritten

    def fix(self, store: ObjectStore) -> None:
        """What the operator does: the good body back."""
        store.put(self.key, self.good, expected_version=self.version)


def _record_change(key: str, value: Any, **also: Any) -> Callable[[dict[str, Any]], str]:
    """Set ``key`` (and ``also``) of a ticker object's record; returns the field the error must name."""

    def corrupt(data: dict[str, Any]) -> str:
        data["progress"] = {**(data["progress"] or {}), key: value, **also}
        return f"progress.{key}"

    return corrupt


def _set_lease(data: dict[str, Any]) -> str:
    data["progress"] = {
        **(data["progress"] or {}),
        "lease": {"owner": "h-1-a", "expires": "2024-06-14T22:16:00"},
    }
    return "progress.lease.expires"  # no time zone


def break_totals(data: dict[str, Any]) -> str:
    data["totals"] = {"zz": [0]}
    return "totals.zz"


def _set_version(data: dict[str, Any]) -> str:
    data["version"] = 3
    return "version"


# Hand edits and half-written objects a ticker's progress can suffer; each names the field it breaks.
CORRUPTIONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "done-as-string": _record_change("done", "false"),
    "naive-lease": _set_lease,
    "planned-without-end": _record_change("end", None, planned=True),
    "negative-counter": _record_change("attempts", -1),
    "unknown-version": _set_version,
}


class CrashingInvoker:
    """Runs the real scraper; the ``at``-th invocation dies before or after the scraper wrote its data."""

    def __init__(
        self, runtime: scraper.ScraperRuntime, store: MortalStore, *, at: int, after_write: bool, hard: bool
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.at = at
        self.after_write = after_write
        self.hard = hard
        self.calls = 0

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.calls != self.at:
            return scraper.handle(event, self.runtime)
        if self.after_write:
            scraper.handle(event, self.runtime)  # the chunk's rows are stored ...
        self.store.dead = self.hard
        raise Crash(f"crash at invocation {self.calls}")  # ... and its progress never is
