"""Objects of one kind in the object store: read strictly, changed only by compare-and-swap.

``Versioned.update(key, change)`` is one read-change-write attempt with ``IfMatch`` on the version
read, re-run on a lost race by ``objectstore.compare_and_swap`` (bounded, jittered backoff, then
ContentionError), so concurrent writers merge instead of overwriting each other. The first attempt
uses the copy this process last read or wrote (kept per key), so a step that already read an object
does not read it again: a stale copy only costs a 412 and a re-read. An object that cannot be decoded
is a StoreError naming the object and the field, raised before anything is written: it is never
written over.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from stockpipe.errors import PreconditionFailed, StoreError
from stockpipe.objectstore import DEFAULT_MAX_ATTEMPTS, ObjectStore, compare_and_swap

__all__ = ["DEFAULT_MAX_ATTEMPTS", "Versioned"]

T = TypeVar("T")


class Versioned(Generic[T]):
    """Decoded objects by key, with their versions; ``empty(key)`` stands for an object not written yet."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        decode: Callable[[str, bytes], T],
        encode: Callable[[str, T], bytes],
        empty: Callable[[str], T],
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self._decode = decode
        self._encode = encode
        self._empty = empty
        self.max_attempts = max_attempts
        self.sleep = sleep
        self._known: dict[str, tuple[T, str | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[T, str | None]:
        """The object (``empty(key)`` when absent) and its version (None when absent); always reads."""
        stored = self.store.get(key)
        if stored is None:
            value: tuple[T, str | None] = (self._empty(key), None)
        else:
            try:
                value = (self._decode(key, stored.body), stored.version)
            except ValueError as exc:  # never write over what we cannot read: a human has to look at it
                raise StoreError(f"{self.store.describe(key)}: {exc}") from None
        self._remember(key, value)
        return value

    def known(self, key: str) -> tuple[T, str | None]:
        """The copy last read or written here, else a fresh read."""
        with self._lock:
            cached = self._known.get(key)
        return cached if cached is not None else self.get(key)

    def update(self, key: str, change: Callable[[T], T], *, monotone: bool = False) -> tuple[T, bool]:
        """Apply ``change`` atomically: ``(new value, written)``; exceptions from ``change`` write nothing.

        "Nothing to write" is decided on a fresh read, unless ``monotone``: a change that only ever
        replaces older parts by newer ones (by revision), so a stale copy that needs none of it means
        the stored one, newer still, needs none either.
        """

        def attempt(lost: int) -> tuple[T, bool]:
            current, version = self.known(key) if lost == 0 else self.get(key)
            updated = change(current)
            if updated == current and lost == 0 and not monotone:  # decide on a fresh read
                current, version = self.get(key)
                updated = change(current)
            if updated == current:
                return current, False
            body = self._encode(key, updated)
            try:
                new_version = self.store.put(
                    key, body, expected_version=version, content_type="application/json"
                )
            except PreconditionFailed:
                self.forget(key)
                raise
            self._remember(key, (updated, new_version))
            return updated, True

        what = self.store.describe(key)
        return compare_and_swap(attempt, what=what, max_attempts=self.max_attempts, sleep=self.sleep)

    def forget(self, key: str) -> None:
        with self._lock:
            self._known.pop(key, None)

    def _remember(self, key: str, value: tuple[T, str | None]) -> None:
        with self._lock:
            self._known[key] = value
