"""The backfill index in the object store: shards and root, kept current by the run that changes a ticker.

A step changes one ticker: ``record`` then rewrites that ticker's shard entry and that shard's totals
in the root, bottom-up, each by compare-and-swap and only when something changed (a step reads and
writes a few KB whatever the universe's size). ``sync`` brings every shard up to date with the stored
universe, the start date and the chunk size when one of them changed (once after ``pulumi up``, not
per run); ``candidates`` yields the open tickers shard by shard, so a run reads only as many shards as
it needs. See ``index`` for the data and the ordering rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date, datetime

from stockpipe.backfill.index import Entry, Root, Shard, Synced, synced_shard, with_record
from stockpipe.backfill.index_codec import root_from_json, root_to_json, shard_from_json, shard_to_json
from stockpipe.backfill.state import TickerProgress
from stockpipe.backfill.versioned import DEFAULT_MAX_ATTEMPTS, Versioned
from stockpipe.layout import BACKFILL_INDEX_KEY, BACKFILL_SHARDS_PREFIX, shard_key, shard_of
from stockpipe.objectstore import ObjectStore

IO_THREADS = 16  # parallel object reads/writes when a whole index is synced


def _shard_id(key: str) -> str:
    return key[len(BACKFILL_SHARDS_PREFIX) : -len(".json")]


def _bump(before: Shard, after: Shard) -> Shard:
    return before if after == before else replace(after, rev=before.rev + 1)


class IndexStore:
    def __init__(
        self, store: ObjectStore, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS, sleep: Callable[[float], None]
    ) -> None:
        self.store = store
        self.shards: Versioned[Shard] = Versioned(
            store,
            decode=lambda key, body: shard_from_json(body, _shard_id(key)),
            encode=lambda key, shard: shard_to_json(shard),
            empty=lambda key: Shard(_shard_id(key)),
            max_attempts=max_attempts,
            sleep=sleep,
        )
        self.roots: Versioned[Root] = Versioned(
            store,
            decode=lambda key, body: root_from_json(body),
            encode=lambda key, root: root_to_json(root),
            empty=lambda key: Root(),
            max_attempts=max_attempts,
            sleep=sleep,
        )

    # ------------------------------------------------------------ reading

    def root(self) -> tuple[Root, bool]:
        """The root (read now) and whether it exists."""
        root, version = self.roots.get(BACKFILL_INDEX_KEY)
        return root, version is not None

    def shard(self, shard_id: str) -> Shard:
        return self.shards.get(shard_key(shard_id))[0]

    def entries(self, tickers: list[str]) -> dict[str, Entry]:
        """The entries of ``tickers`` (those the index holds), reading each shard once."""
        found: dict[str, Entry] = {}
        by_shard: dict[str, list[str]] = {}
        for ticker in tickers:
            by_shard.setdefault(shard_of(ticker), []).append(ticker)
        for sid, names in sorted(by_shard.items()):
            shard = self.shard(sid)
            found.update({n: shard.entries[n] for n in names if n in shard.entries})
        return found

    def candidates(self, root: Root, chunk_months: int) -> Iterator[str]:
        """Open universe tickers, shard by shard (a shard's stale totals in the root are corrected)."""
        for sid in root.shards_with("open"):
            shard = self.shard(sid)
            self._publish(sid, shard, chunk_months)
            yield from shard.open_tickers()

    def listed(
        self,
        root: Root,
        *,
        state: str | None,
        limit: int,
        after: tuple[str, str] | None = None,
        universe: bool = False,
    ) -> tuple[list[str], tuple[str, str] | None]:
        """Up to ``limit`` tickers in index order (shard, then name) after ``after``, in ``state`` if given.

        Returns them and where the next page starts (None: nothing more).
        """
        field = "universe_" + state if universe and state in ("done", "parked") else state or ""
        shard_ids = root.shards_with(field) if field else sorted(root.shards)
        names: list[str] = []
        last: tuple[str, str] | None = None
        for sid in shard_ids:
            if after is not None and sid < after[0]:
                continue
            shard = self.shard(sid)
            for name in sorted(shard.entries):
                entry = shard.entries[name]
                if after is not None and (sid, name) <= after:
                    continue
                if (state is None or entry.state == state) and (not universe or entry.universe):
                    if len(names) == limit:
                        return names, last
                    names.append(name)
                    last = (sid, name)
        return names, None

    # ------------------------------------------------------------ writing

    def record(self, ticker: str, record: TickerProgress | None, rev: int, chunk_months: int) -> None:
        """Bring ``ticker``'s entry up to its object at ``rev``: its shard, then the shard's totals."""
        sid = shard_of(ticker)
        shard, written = self.shards.update(
            shard_key(sid),
            lambda current: _bump(current, with_record(current, ticker, record, rev)),
            monotone=True,
        )
        if written:
            self._publish(sid, shard, chunk_months)

    def _publish(self, sid: str, shard: Shard, chunk_months: int) -> None:
        totals = shard.totals(chunk_months)
        self.roots.update(
            BACKFILL_INDEX_KEY, lambda root: root.with_shard(sid, shard.rev, totals), monotone=True
        )

    def sync(
        self,
        universe: list[str],
        universe_version: str | None,
        *,
        backfill_start: date,
        chunk_months: int,
        now: datetime,
        seed: dict[str, Entry] | None = None,
    ) -> Root:
        """Every shard brought up to date with the universe, start date and chunk size; the root last.

        ``seed``: entries to add where the shard has none newer (a migration's). Interrupted, it is
        simply done again by the next caller (the root's ``synced`` changes last).
        """
        target = Synced(universe_version, backfill_start, chunk_months)
        members: dict[str, set[str]] = {}
        for ticker in universe:
            members.setdefault(shard_of(ticker), set()).add(ticker)
        seeded: dict[str, dict[str, Entry]] = {}
        for ticker, entry in (seed or {}).items():
            seeded.setdefault(shard_of(ticker), {})[ticker] = entry
        root, _ = self.root()
        existing = {
            _shard_id(key) for key in self.store.list_keys(BACKFILL_SHARDS_PREFIX) if key.endswith(".json")
        }
        shard_ids = sorted(existing | set(root.shards) | set(members) | set(seeded))

        def one(sid: str) -> tuple[str, Shard]:
            def change(current: Shard) -> Shard:
                merged = current
                for ticker, entry in seeded.get(sid, {}).items():
                    if ticker not in merged.entries or merged.entries[ticker].rev < entry.rev:
                        merged = replace(merged, entries={**merged.entries, ticker: entry})
                synced = synced_shard(merged, members.get(sid, set()), backfill_start=backfill_start, now=now)
                return _bump(current, synced)

            shard, _ = self.shards.update(shard_key(sid), change)
            return sid, shard

        with ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="index") as pool:
            shards = dict(pool.map(one, shard_ids))

        def finish(current: Root) -> Root:
            updated = {}
            for sid, shard in shards.items():
                stored = current.shards.get(sid)
                keep = stored is not None and stored[0] > shard.rev  # a newer write by a concurrent step
                if not keep and shard.entries:
                    updated[sid] = (shard.rev, shard.totals(chunk_months))
                elif keep:
                    updated[sid] = stored  # type: ignore[assignment]
            others = {sid: v for sid, v in current.shards.items() if sid not in shards}
            return Root(target, {**others, **updated})

        root, _ = self.roots.update(BACKFILL_INDEX_KEY, finish)
        return root
