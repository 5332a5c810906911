"""Progress at scale, over the moto S3 server: one object per ticker plus a sharded index, so a step reads
and writes only its ticker's objects; ``progress.json`` of earlier versions migrated once and never
written; a bad object blocks only what it holds; ``status`` paged; the universe capped."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stockpipe.backfill import progress as prog
from stockpipe.backfill import run_summary
from stockpipe.backfill.progress_store import PROGRESS_KEY, ProgressStore
from stockpipe.errors import ContentionError, PreconditionFailed, StoreError
from stockpipe.layout import BACKFILL_INDEX_KEY, shard_key, shard_of, ticker_progress_key
from stockpipe.objectstore import DelegatingStore, LocalObjectStore, ObjectStore, StoredObject
from stockpipe.universe import save_universe
from tests.backfill.backfill_fakes import KNOWN, TODAY, Crash, MortalStore, World

NOW = datetime(2024, 6, 14, 22, 0, tzinfo=UTC)
START = date(2020, 1, 1)


class Recording(DelegatingStore):
    """The store as the orchestrator sees it, recording every key read and written under backfill/."""

    def __init__(self, inner: ObjectStore) -> None:
        super().__init__(inner)
        self.reads: list[str] = []
        self.writes: list[str] = []
        self.bytes = 0

    def get(self, key: str) -> StoredObject | None:
        stored = super().get(key)
        if key.startswith("backfill/"):
            self.reads.append(key)
            self.bytes += len(stored.body) if stored else 0
        return stored

    def put(self, key: str, body: bytes, *, expected_version: str | None, content_type: str = "") -> str:
        if key.startswith("backfill/"):
            self.writes.append(key)
            self.bytes += len(body)
        return super().put(key, body, expected_version=expected_version, content_type=content_type)


def objects(store: ObjectStore, prefix: str = "backfill/") -> dict[str, bytes]:
    return {key: store.get(key).body for key in store.list_keys(prefix)}  # type: ignore[union-attr]


# ---------------------------------------------------------------- a step touches only its ticker


def test_a_step_reads_and_writes_only_its_tickers_objects(world: World) -> None:
    universe = [f"T{i:03d}" for i in range(300)]
    world.scraper.known.update({t: date(2000, 1, 3) for t in universe})
    save_universe(world.store, universe)
    world.orchestrator().status()  # the index, synced with the universe once
    recording = Recording(world.store)
    marks: list[tuple[int, int, int]] = []
    orchestrator = world.orchestrator(request_budget=3, requests_per_step=1, concurrency=1)
    orchestrator.progress = ProgressStore(recording)
    orchestrator.store = recording
    orchestrator.listener = lambda *_: marks.append(
        (len(recording.reads), len(recording.writes), recording.bytes)
    )
    summary = orchestrator.run()
    assert summary["chunks_done"] == 3 * prog.count_chunks(START, TODAY, 6)  # three tickers, one request each
    steps = [world.scraper.calls[i][0] for i in range(3)]
    (r1, w1, b1), (r2, w2, b2) = marks[1], marks[2]
    ticker = steps[2]  # the last step: everything between the 2nd and 3rd listener calls is its own
    own = {ticker_progress_key(ticker), shard_key(shard_of(ticker)), BACKFILL_INDEX_KEY}
    assert set(recording.writes[w1:w2]) == own  # the claim, the answer, its index entry and totals
    reads = recording.reads[r1:r2]
    assert set(reads) <= own | {ticker_progress_key(steps[1])} | {shard_key(shard_of(t)) for t in universe}
    assert sum(1 for key in reads if key.startswith("backfill/tickers/")) <= 2  # its own, the last one's
    assert b2 - b1 < 16 * 1024  # a few KB, whatever the universe's size
    assert summary["remaining"]["tickers"] == 297  # exact, from the index root


# ---------------------------------------------------------------- the ticker objects


def test_the_ticker_object_is_the_documented_shape(world: World) -> None:
    world.orchestrator(start_date=date(2023, 11, 1)).run(["NEWCO"])
    stored = world.store.get("backfill/tickers/NEWCO.json")
    assert stored is not None
    data = json.loads(stored.body)
    assert (data["version"], data["ticker"], data["rev"]) == (2, "NEWCO", 2)  # claimed, then answered
    newco = data["progress"]
    assert newco["start"] == "2023-11-01"
    assert newco["end"] == "2024-06-14"
    assert newco["next_start"] is None
    assert newco["done"] is True
    assert newco["attempts"] == 0
    assert newco["first_date"] == "2023-11-01"
    assert newco["parked"] is False
    assert newco["last_error"] is None
    assert newco["updated_at"].startswith("2024-06-14T22:00:00")
    assert (newco["metadata"], newco["max_chunks"], newco["chunks_done"]) == (None, 0, 2)
    assert world.store.get(PROGRESS_KEY) is None  # the one-file progress is not written any more


def test_progress_updates_merge_on_conflict(world: World) -> None:
    """A CAS loser re-reads and re-applies its change: both writers' updates survive."""
    store = ProgressStore(world.store)
    failure = dict(kind="x", message="", requests=1, owner="o", now=world.clock(), max_attempts=5)
    store.update("A", lambda p: prog.record_failure(p, "A", **failure))  # type: ignore[arg-type]
    raced = []

    def racing_change(p: prog.Progress) -> prog.Progress:
        if not raced:  # another run writes between our read and our write
            raced.append(True)
            other = ProgressStore(world.store)
            other.update("A", lambda q: prog.record_failure(q, "A", **failure))  # type: ignore[arg-type]
        return prog.record_failure(p, "A", **failure)  # type: ignore[arg-type]

    record, rev = store.update("A", racing_change)
    assert record is not None
    assert (record.attempts, record.requests, rev) == (3, 3, 3)
    assert store.read("A") == (record, 3)


def test_conflicts_give_up_after_a_bound(world: World) -> None:
    class AlwaysConflict(Recording):
        def put(self, key: str, body: bytes, *, expected_version: str | None, content_type: str = "") -> str:
            raise PreconditionFailed("lost")

    store = ProgressStore(AlwaysConflict(world.store), max_attempts=3, sleep=lambda _: None)
    with pytest.raises(ContentionError, match=r"gave up writing .*AAPL\.json: 3 attempts"):
        store.update("AAPL", lambda p: p.with_ticker("AAPL", prog.TickerProgress(attempts=1)))


# ---------------------------------------------------------------- migration of progress.json


def legacy(**records: dict[str, Any]) -> bytes:
    return json.dumps({"version": 1, "tickers": records}, indent=1).encode()


def record(**changes: Any) -> dict[str, Any]:
    base = {"start": "2020-01-01", "end": "2024-06-14", "next_start": None, "done": True, "attempts": 0,
            "last_error": None, "parked": False, "first_date": "1980-12-12",
            "updated_at": "2024-06-01T12:00:00+00:00", "planned": True, "lease": None, "chunks_done": 9,
            "rows": 1120, "requests": 10}  # fmt: skip
    return {**base, **changes}


LEGACY = {
    "AAPL": record(),
    "META": record(next_start="2022-01-01", done=False, first_date="2021-05-18", start="2021-05-18"),
    "XYZ": record(start=None, end=None, done=False, parked=True, planned=False, first_date=None,
                  attempts=1, last_error="not_found: Ticker 'XYZ' not found", chunks_done=0, rows=0),
    "NEWCO": record(start="2023-11-01", first_date="2023-11-01", next_start="2023-11-01", done=False,
                    lease={"owner": "elsewhere-1-abc", "expires": "2024-06-14T22:10:00+00:00",
                           "start": "2023-11-01", "end": "2024-04-30"}),
}  # fmt: skip


def test_progress_json_is_migrated_once_and_never_written(world: World) -> None:
    body = legacy(**LEGACY)
    world.store.put(PROGRESS_KEY, body, expected_version=None)
    save_universe(world.store, ["AAPL", "META", "NEWCO", "XYZ"])
    status = world.orchestrator().status()
    assert status["counts"] == {"done": 1, "in_progress": 2, "parked": 1, "pending": 0}
    assert status["chunks_left"] == prog.count_chunks(date(2022, 1, 1), TODAY, 6) + 2
    converted = ProgressStore(world.store).load()
    assert converted == prog.from_json(body)  # every record as it was (metadata: read, as planned then)
    assert converted.get("META").metadata == "read"  # type: ignore[union-attr]
    spent = world.requests
    summary = world.orchestrator().run()
    assert summary["leased_elsewhere"] == ["NEWCO"]
    assert world.scraper.calls == [("META", date(2022, 1, 1), TODAY)]  # resumed, the rest in one request
    assert world.requests - spent == 1
    world.clock.advance(601)
    assert world.orchestrator().run()["stopped"] == "complete"
    assert world.store.get(PROGRESS_KEY).body == body  # type: ignore[union-attr]


def test_an_interrupted_migration_is_done_again(world: World) -> None:
    body = legacy(**LEGACY)
    world.store.put(PROGRESS_KEY, body, expected_version=None)
    mortal = MortalStore(world.store)
    written: list[str] = []
    original_put = mortal.put

    def dying_put(key: str, data: bytes, **kwargs: Any) -> str:
        if len(written) == 3:  # two ticker objects and one shard in: the process is killed
            mortal.dead = True
        written.append(key)
        return original_put(key, data, **kwargs)

    mortal.put = dying_put  # type: ignore[method-assign]
    orchestrator = world.orchestrator()
    orchestrator.progress = ProgressStore(mortal)
    with pytest.raises(Crash):
        orchestrator.status()
    assert world.store.get(BACKFILL_INDEX_KEY) is None  # the root is written last
    assert world.orchestrator().status()["counts"]["in_progress"] == 2
    assert ProgressStore(world.store).load() == prog.from_json(body)


def test_a_bad_progress_json_is_never_migrated(world: World) -> None:
    bad = legacy(AAPL=record(done="false"))
    world.store.put(PROGRESS_KEY, bad, expected_version=None)
    for event in ({}, {"action": "status"}, {"action": "retry", "tickers": ["AAPL"]}):
        with pytest.raises(
            StoreError, match=r"backfill/progress.json: tickers\.AAPL\.done must be true or false"
        ):
            world.orchestrator().handle(event if event else {"tickers": ["AAPL"]})
    assert objects(world.store) == {PROGRESS_KEY: bad}  # nothing else written
    assert world.requests == 0


# ---------------------------------------------------------------- a bad object blocks what it holds


def test_a_bad_ticker_object_blocks_only_that_ticker(world: World) -> None:
    world.orchestrator(max_chunks_per_request=1, request_budget=2).run(["AAPL", "META"])  # AAPL started
    key = ticker_progress_key("AAPL")
    good = world.store.get(key)
    assert good is not None
    data = json.loads(good.body)
    data["progress"]["attempts"] = -1
    bad = json.dumps(data).encode()
    version = world.store.put(key, bad, expected_version=good.version)
    where = world.store.describe(key)
    summary = world.orchestrator().run(["AAPL", "META"])
    assert summary["errors"]["AAPL"].startswith(f"store: {where}: progress.attempts must be a non-negative")
    assert summary["done"] == ["META"]  # the other ticker went on
    assert summary["stopped"] == "no_work"
    shown = world.orchestrator().handle({"action": "status", "tickers": ["AAPL"]})["tickers"]["AAPL"]
    assert shown["error"].startswith(f"{where}: progress.attempts")
    for action in ("retry", "reset"):
        with pytest.raises(StoreError, match=r"progress\.attempts"):
            world.orchestrator().handle({"action": action, "tickers": ["AAPL"]})
    assert world.store.get(key).body == bad  # type: ignore[union-attr]
    world.store.put(key, good.body, expected_version=version)  # fixed by hand
    assert world.orchestrator().run(["AAPL", "META"])["stopped"] == "complete"


def test_an_object_broken_during_its_step_blocks_only_that_ticker(world: World) -> None:
    """The step's data is stored; its progress cannot be written over the bad object: reported, redone."""
    key = ticker_progress_key("AAPL")

    def break_it(ticker: str, start: date, end: date) -> None:
        if ticker == "AAPL":
            stored = world.store.get(key)
            assert stored is not None
            world.store.put(key, b"{}", expected_version=stored.version)

    world.scraper.after_write = break_it
    summary = world.orchestrator(concurrency=1).run(["AAPL", "META"])
    assert summary["errors"]["AAPL"].startswith(f"store: {world.store.describe(key)}: version must be 2")
    assert summary["done"] == ["META"]
    assert world.store.get(key).body == b"{}"  # type: ignore[union-attr]


@pytest.mark.parametrize("which", ["root", "shard"])
def test_a_bad_index_object_is_one_clear_error(world: World, which: str) -> None:
    save_universe(world.store, ["AAPL"])
    world.orchestrator().run()
    key = BACKFILL_INDEX_KEY if which == "root" else shard_key(shard_of("AAPL"))
    stored = world.store.get(key)
    assert stored is not None
    bad = stored.body.replace(b'"version":2', b'"version":"2"')
    world.store.put(key, bad, expected_version=stored.version)
    save_universe(world.store, ["AAPL", "META"])  # a sync must read every shard
    for event in ({}, {"action": "status"}):
        with pytest.raises(StoreError, match=f"{key}: version must be 2"):
            world.orchestrator().handle(event)
    assert world.store.get(key).body == bad  # type: ignore[union-attr]


# ---------------------------------------------------------------- status pages and caps


def test_status_pages_through_the_index(world: World) -> None:
    universe = [f"U{i:03d}" for i in range(250)]  # unknown to the fake Tiingo: a request parks each
    save_universe(world.store, universe)
    world.orchestrator(request_budget=7, requests_per_step=1).run()
    seen: list[str] = []
    event: dict[str, Any] = {"action": "status"}
    for _ in range(5):
        answer = world.orchestrator().handle(event)
        assert answer["counts"] == {"done": 0, "in_progress": 0, "parked": 7, "pending": 243}
        assert answer["page"]["total"] == 250
        seen += list(answer["tickers"])
        if answer["page"]["next"] is None:
            break
        assert len(answer["tickers"]) == 100
        event = {"action": "status", "page": answer["page"]["next"]}
    assert sorted(seen) == universe  # every ticker once, in index order
    parked = world.orchestrator().handle({"action": "status", "state": "parked", "limit": 5})
    assert len(parked["tickers"]) == 5
    assert parked["page"]["total"] == 7
    rest = world.orchestrator().handle(
        {"action": "status", "state": "parked", "page": parked["page"]["next"]}
    )
    assert len(rest["tickers"]) == 2
    assert rest["page"]["next"] is None
    assert {e["state"] for e in [*parked["tickers"].values(), *rest["tickers"].values()]} == {"parked"}
    asked = world.orchestrator().handle({"action": "status", "tickers": ["U001", "NOPE"]})
    assert asked["unknown"] == ["NOPE"]
    assert asked["tickers"]["NOPE"] == {"state": "pending", "chunks_left": None}


def test_every_answer_stays_small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page of the most a status may show: details of 1,000 tickers with the longest errors, < 1 MB;
    a run summary lists at most MAX_LISTED names per list (patched to 3 here), counts exact. (A local
    directory: the same code as over moto, 1,000 objects written faster.)"""
    world = World(LocalObjectStore(tmp_path), dict(KNOWN))
    universe = [f"LONG-NAME-{i:05d}" for i in range(1000)]
    save_universe(world.store, universe)
    world.orchestrator().status()
    store = ProgressStore(world.store)
    for ticker in universe:
        store.update(
            ticker,
            lambda p, t=ticker: prog.record_failure(
                p, t, kind="not_found", message="x" * 400, requests=1, owner="o", now=NOW, max_attempts=5
            ),
            chunk_months=6,
        )
    answer = world.orchestrator().handle({"action": "status", "limit": 1000})
    assert len(answer["tickers"]) == 1000
    assert len(json.dumps(answer)) < 1024 * 1024
    monkeypatch.setattr(run_summary, "MAX_LISTED", 3)
    summary = world.orchestrator().run()
    assert summary["stopped"] == "complete"
    assert len(summary["parked"]) == 3
    assert summary["totals"]["parked"] == 1000


def test_the_universe_is_capped(world: World) -> None:
    save_universe(world.store, [f"X{i}" for i in range(25_001)])
    with pytest.raises(
        ValueError, match=r"universe at .*config/universe.json has 25,001 tickers; .*at most 25,000"
    ):
        world.orchestrator().run()
    assert objects(world.store) == {}
    with pytest.raises(ValueError, match="25,001 tickers"):
        world.orchestrator().run([f"X{i}" for i in range(25_001)])


def test_leases_expire_per_ticker(world: World) -> None:
    """Overlapping runs exclude each other per ticker, through the ticker's own object."""
    store = ProgressStore(world.store)
    work = prog.Work("AAPL", "chunk", START, TODAY, 9)
    store.update(
        "AAPL", lambda p: prog.claim(p, work, owner="other-1-x", now=world.clock(), lease_seconds=60)
    )
    summary = world.orchestrator().run(["AAPL", "META"])
    assert summary["leased_elsewhere"] == ["AAPL"]
    world.clock.now += timedelta(seconds=61)
    assert world.orchestrator().run(["AAPL", "META"])["stopped"] == "complete"
