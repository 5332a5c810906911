"""``backfill/progress.json`` in the object store, changed only through compare-and-swap.

``update(change)`` reads the state and its version, applies a pure change and writes it with
``IfMatch``; on a lost race it re-reads and re-applies the change to the newer state, so two overlapping
runs merge their outcomes instead of overwriting each other.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from stockpipe.backfill import progress as prog
from stockpipe.errors import PreconditionFailed, StoreError
from stockpipe.layout import PROGRESS_KEY
from stockpipe.objectstore import ObjectStore

__all__ = ["PROGRESS_KEY", "ProgressStore"]


class ProgressStore:
    def __init__(
        self,
        store: ObjectStore,
        *,
        key: str = PROGRESS_KEY,
        max_conflicts: int = 50,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.key = key
        self.max_conflicts = max_conflicts
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
        """Apply ``change`` atomically; exceptions from ``change`` (e.g. ClaimRejected) write nothing."""
        for attempt in range(self.max_conflicts + 1):
            current, version = self.load_versioned()
            updated = change(current)
            body = prog.to_json(updated)
            if version is not None and body == prog.to_json(current):
                return updated  # nothing to write
            try:
                self.store.put(self.key, body, expected_version=version, content_type="application/json")
            except PreconditionFailed:
                if attempt == self.max_conflicts:
                    raise
                self.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))
                continue
            return updated
        raise AssertionError("unreachable")
