"""Where a local run's prices come from (the built-in simulator or the real Tiingo API), where they go by
default, and what the real API will cost before anything is spent.

Sources never share a data directory: each has its own default (``data-simulator``, ``data-tiingo``,
and for a TIINGO_BASE_URL other than Tiingo's, e.g. a `stockpipe simulator` you started yourself,
``data-<host>-<port>``: names that say what is inside), and ``backfill/source.json`` records the source
of a directory, so an explicit ``--data-dir`` cannot mix simulated and real prices either.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from stockpipe.backfill import progress as prog
from stockpipe.errors import StoreError
from stockpipe.objectstore import ObjectStore, compare_and_swap

SIMULATOR = "simulator"
TIINGO = "tiingo"
DEFAULT_DATA_DIRS = {SIMULATOR: Path("data-simulator"), TIINGO: Path("data-tiingo")}
SOURCE_KEY = "backfill/source.json"
SIMULATOR_TOKEN = "local-simulator-token"  # noqa: S105 - the loopback simulator's dummy token
QUOTA_SAFETY_SECONDS = 5  # start a new window a little after the clock hour
TIINGO_HOST = "api.tiingo.com"
_SOURCE_NAMES = {SIMULATOR: "the built-in simulator", TIINGO: "the real Tiingo API"}


def source_of(use_simulator: bool, base_url: str | None) -> str:
    """``simulator``, ``tiingo``, or ``api at <host:port>`` for another TIINGO_BASE_URL."""
    if use_simulator:
        return SIMULATOR
    host = urlsplit(base_url).netloc if base_url else TIINGO_HOST
    return TIINGO if host in ("", TIINGO_HOST) else f"api at {host}"


def default_data_dir(source: str) -> Path:
    if source in DEFAULT_DATA_DIRS:
        return DEFAULT_DATA_DIRS[source]
    host = source.removeprefix("api at ")
    return Path("data-" + "".join(ch if ch.isalnum() or ch in ".-" else "-" for ch in host))


class SourceMismatch(ValueError):
    """The data directory holds prices from the other source."""

    def __init__(self, data_dir: Path, stored: str, source: str) -> None:
        self.stored = stored
        super().__init__(
            f"{data_dir} holds prices from {_SOURCE_NAMES.get(stored, stored)}, but this run uses "
            f"{_SOURCE_NAMES.get(source, source)}; simulated and real prices are never mixed"
        )


def check_source(store: ObjectStore, source: str, data_dir: Path) -> None:
    """Record the directory's source on first use; SourceMismatch when it holds the other source's data.

    Two runs starting at once on a new directory race on the marker: the loser re-reads it.
    """

    def attempt(_lost: int) -> None:
        marker = store.get(SOURCE_KEY)
        if marker is None:  # PreconditionFailed: another run wrote it first, read what it wrote
            store.put(SOURCE_KEY, json.dumps({"source": source}).encode(), expected_version=None)
            return
        try:
            stored = json.loads(marker.body).get("source")
        except (ValueError, AttributeError):
            raise StoreError(f"{store.describe(SOURCE_KEY)} is not a JSON object with a 'source'") from None
        if stored != source:
            raise SourceMismatch(data_dir, str(stored), source)

    compare_and_swap(attempt, what=store.describe(SOURCE_KEY))


def json_object(body: bytes | None, where: str) -> dict[str, Any]:
    """A stored JSON object (``{}`` when absent), or StoreError naming the file."""
    if body is None:
        return {}
    try:
        value = json.loads(body)
    except ValueError:
        raise StoreError(f"{where} is not valid JSON") from None
    if not isinstance(value, dict):
        raise StoreError(f"{where} must be a JSON object")
    return value


def put_json_merged(store: ObjectStore, key: str, updates: dict[str, str]) -> None:
    """Merge ``updates`` into the JSON object at ``key`` by compare-and-swap (a lost race re-reads)."""

    def attempt(_lost: int) -> None:
        current = store.get(key)
        merged = {**json_object(current.body if current else None, store.describe(key)), **updates}
        store.put(
            key,
            json.dumps(merged, indent=1, sort_keys=True).encode(),
            expected_version=current.version if current else None,
            content_type="application/json",
        )

    compare_and_swap(attempt, what=store.describe(key))


@dataclass(frozen=True)
class Estimate:
    """Requests a run will need at most (the orchestrator asks for each ticker's pending range at once)."""

    tickers: int
    requests: int
    unplanned: int  # tickers with no answer yet: 1 request, or 2 when Tiingo answers it empty


def estimate_requests(progress: prog.Progress, tickers: Iterable[str], *, chunk_months: int) -> Estimate:
    """Worst case of a fault-free run: one request per ticker with work left (a split ticker, one per
    request its ``max_chunks`` allows), plus a metadata lookup for each ticker not answered yet."""
    names = list(tickers)
    requests = unplanned = 0
    for ticker in names:
        record = progress.get(ticker)
        if record is None or not record.planned:
            unplanned += 1
            requests += 2
            continue
        if record.parked or record.done:
            continue
        left = prog.chunks_left(record, chunk_months) or 0
        if left:
            requests += -(-left // record.max_chunks) if record.max_chunks else 1
    return Estimate(len(names), requests, unplanned)


class QuotaWindow:
    """Requests spent in Tiingo's current clock-hour window (as far as this process knows)."""

    def __init__(self, per_hour: int, clock: Callable[[], float]) -> None:
        self.per_hour = per_hour
        self.clock = clock
        self.window = self._index()
        self.spent = 0

    def _index(self) -> int:
        return int(self.clock() // 3600)

    def remaining(self) -> int:
        if self._index() != self.window:
            self.window, self.spent = self._index(), 0
        return max(0, self.per_hour - self.spent)

    def spend(self, requests: int) -> None:
        self.remaining()
        self.spent += requests

    def exhaust(self) -> None:
        """Tiingo said 429: whatever we counted, this window is used up."""
        self.remaining()
        self.spent = self.per_hour

    def next_window_at(self) -> float:
        return (self.window + 1) * 3600 + QUOTA_SAFETY_SECONDS

    def describe(self, requests: int) -> str:
        """``within this hour's allowance`` or how many more clock hours the quota needs."""
        left = self.remaining()
        if requests <= left:
            return "within this hour's allowance"
        hours = math.ceil((requests - left) / self.per_hour)
        return (
            f"about {hours} more hour{'s' if hours != 1 else ''} at {self.per_hour} requests per hour "
            f"({left} left in this hour)"
        )
