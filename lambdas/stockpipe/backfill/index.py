"""The backfill index as plain data: a summary of every ticker, in shards, and totals per shard.

Why it exists: a run must find pending work, and ``status`` must count states, without reading every
ticker's object. The ticker objects (``backfill/tickers/<T>.json``) are the truth; the index is derived
from them and says, per ticker, only what planning and counting need (``summary_of``: the range, what
is fetched, done/parked, the metadata state) plus whether it is in the stored universe. Tickers map to
``layout.BACKFILL_SHARDS`` shards by CRC-32 of the name; the root keeps each shard's totals (exact
counts without reading the shards) and what the index was last brought up to date with (``Synced``).

Ordering rules that keep it safe (``index_store``): an entry is only replaced by a summary of a newer
ticker revision (``Entry.rev``), a shard's totals only by those of a newer shard revision; a run writes
the ticker first and the index after, and a run that finds an entry that disagrees with its ticker
corrects it. So after a crash between the two writes the index can lag, never lose work for good.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import NamedTuple

from stockpipe.backfill.progress import extend_history
from stockpipe.backfill.state import Progress, TickerProgress, chunks_left, ticker_state
from stockpipe.layout import shard_of

OPEN_STATES = ("pending", "in_progress")


def summary_of(record: TickerProgress | None) -> TickerProgress | None:
    """The fields of a record the index keeps (what decides its state, chunks left and extension)."""
    if record is None:
        return None
    return TickerProgress(
        start=record.start,
        end=record.end,
        next_start=record.next_start,
        fetched_from=record.fetched_from,
        done=record.done,
        parked=record.parked,
        first_date=record.first_date,
        planned=record.planned,
        metadata=record.metadata,
    )


@dataclass(frozen=True)
class Entry:
    """One ticker in its shard: the summary of its object at revision ``rev`` (0: no object yet)."""

    rev: int = 0
    universe: bool = False
    summary: TickerProgress | None = None

    @property
    def state(self) -> str:
        return ticker_state(self.summary)

    @property
    def open(self) -> bool:
        """Work a run over the stored universe should look at."""
        return self.universe and self.state in OPEN_STATES


class Totals(NamedTuple):
    """Per shard: entries per state and chunks left (not parked); then the universe's open, done, parked."""

    pending: int = 0
    in_progress: int = 0
    done: int = 0
    parked: int = 0
    chunks_left: int = 0
    open: int = 0
    open_chunks_left: int = 0
    open_unplanned: int = 0
    universe_done: int = 0
    universe_parked: int = 0

    def plus(self, other: Totals) -> Totals:
        return Totals(*(a + b for a, b in zip(self, other, strict=True)))


def entry_totals(entry: Entry, chunk_months: int) -> Totals:
    state = entry.state
    left = chunks_left(entry.summary, chunk_months)
    counted = (left or 0) if state != "parked" else 0
    is_open = entry.open
    return Totals(
        pending=int(state == "pending"),
        in_progress=int(state == "in_progress"),
        done=int(state == "done"),
        parked=int(state == "parked"),
        chunks_left=counted,
        open=int(is_open),
        open_chunks_left=counted if is_open else 0,
        open_unplanned=int(is_open and left is None),
        universe_done=int(entry.universe and state == "done"),
        universe_parked=int(entry.universe and state == "parked"),
    )


def sum_totals(totals: Iterable[Totals]) -> Totals:
    result = Totals()
    for item in totals:
        result = result.plus(item)
    return result


@dataclass(frozen=True)
class Shard:
    id: str
    rev: int = 0  # counts the shard's writes
    entries: Mapping[str, Entry] = field(default_factory=dict)

    def totals(self, chunk_months: int) -> Totals:
        return sum_totals(entry_totals(entry, chunk_months) for entry in self.entries.values())

    def open_tickers(self) -> list[str]:
        return sorted(name for name, entry in self.entries.items() if entry.open)


def with_record(shard: Shard, ticker: str, record: TickerProgress | None, rev: int) -> Shard:
    """The shard with ``ticker``'s entry taken from its object at ``rev`` (an older ``rev`` changes nothing).

    A ticker without a record (reset) that is not in the universe leaves the index.
    """
    current = shard.entries.get(ticker)
    if current is not None and current.rev >= rev:
        return shard
    universe = current.universe if current is not None else False
    entries = dict(shard.entries)
    if record is None and not universe:
        entries.pop(ticker, None)
    else:
        entries[ticker] = Entry(rev, universe, summary_of(record))
    return replace(shard, entries=entries)


def synced_shard(shard: Shard, universe: set[str], *, backfill_start: date, now: datetime) -> Shard:
    """The shard brought up to date with the universe and the start date (pure; extension included).

    Universe tickers without an entry get one (pending); entries leave when they have no record and
    left the universe. A start date moved earlier re-opens the entries it extends (their objects are
    extended by the run that next works on them, with the same ``extend_history``).
    """
    entries: dict[str, Entry] = {}
    for name, entry in shard.entries.items():
        member = name in universe
        if entry.summary is None and not member:
            continue
        summary = entry.summary
        if summary is not None:
            extended = extend_history(
                Progress.of(name, summary), [name], backfill_start=backfill_start, now=now
            )
            summary = summary_of(extended.get(name))
        entries[name] = Entry(entry.rev, member, summary)
    for name in universe:
        if shard_of(name) == shard.id and name not in entries:
            entries[name] = Entry(0, True, None)
    return replace(shard, entries=entries)


@dataclass(frozen=True)
class Synced:
    """What the index was last brought up to date with (a change of any triggers a sync)."""

    universe: str | None  # the stored universe's version (None: no stored universe)
    start_date: date
    chunk_months: int


@dataclass(frozen=True)
class Root:
    synced: Synced | None = None  # None: never synced (a new or just migrated index)
    shards: Mapping[str, tuple[int, Totals]] = field(default_factory=dict)  # id -> (shard rev, totals)

    def with_shard(self, shard_id: str, rev: int, totals: Totals) -> Root:
        """The root with a shard's totals at ``rev`` (an older ``rev`` changes nothing)."""
        current = self.shards.get(shard_id)
        if current is not None and current[0] >= rev:
            return self
        shards = dict(self.shards)
        shards[shard_id] = (rev, totals)
        return replace(self, shards=shards)

    def total(self) -> Totals:
        return sum_totals(totals for _, totals in self.shards.values())

    def shards_with(self, field_name: str) -> list[str]:
        """Shard ids whose totals count something in ``field_name`` (e.g. ``open``), in order."""
        return sorted(sid for sid, (_, totals) in self.shards.items() if getattr(totals, field_name))
