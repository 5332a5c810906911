"""``backfill/progress.json`` in the object store, changed only through compare-and-swap.

``update(change)`` is one attempt for ``objectstore.compare_and_swap``: read the state and its version,
apply a pure change, write it with ``IfMatch``. On a lost race the helper runs it again on the newer
state, so two overlapping runs merge their outcomes instead of overwriting each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from stockpipe.backfill import progress as prog
from stockpipe.errors import StoreError
from stockpipe.layout import PROGRESS_KEY
from stockpipe.objectstore import DEFAULT_MAX_ATTEMPTS, ObjectStore, compare_and_swap

__all__ = ["PROGRESS_KEY", "ProgressStore"]


class ProgressStore:
    def __init__(
        self,
        store: ObjectStore,
        *,
        key: str = PROGRESS_KEY,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.key = key
        self.max_attempts = max_attempts
        self.sleep = sleep

    def load_versioned(self) -> tuple[prog.Progress, str | None]:
        """The state and its version (None when no progress was saved yet)."""
        stored = self.store.get(self.key)
        if stored is None:
            return prog.Progress(), None
        try:
            return prog.from_json(stored.body), stored.version
        except ValueError as exc:
            # Never overwrite a file we cannot read: a human has to look at it.
            raise StoreError(f"{self.store.describe(self.key)}: {exc}") from None

    def load(self) -> prog.Progress:
        return self.load_versioned()[0]

    def update(self, change: Callable[[prog.Progress], prog.Progress]) -> prog.Progress:
        """Apply ``change`` atomically; exceptions from ``change`` (e.g. ClaimRejected) write nothing.

        ContentionError after ``max_attempts`` lost races.
        """

        def attempt(_lost: int) -> prog.Progress:
            current, version = self.load_versioned()
            updated = change(current)
            body = prog.to_json(updated)
            if version is None or body != prog.to_json(current):
                self.store.put(self.key, body, expected_version=version, content_type="application/json")
            return updated

        what = self.store.describe(self.key)
        return compare_and_swap(attempt, what=what, max_attempts=self.max_attempts, sleep=self.sleep)
