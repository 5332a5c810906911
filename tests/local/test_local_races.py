"""Two local runs starting at once on one directory race on its small JSON files (issue 9): the loser
of each conditional write re-reads what the winner wrote and goes on (``objectstore.compare_and_swap``),
on the real directory store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stockpipe.objectstore import LocalObjectStore
from stockpipe.universe import UNIVERSE_KEY, load_universe, save_universe
from stockpipe_local.sources import SOURCE_KEY, SourceMismatch, check_source, put_json_merged
from tests.fakes import HookedStore


def rival_writes_first(inner: LocalObjectStore, key: str, body: bytes) -> HookedStore:
    """A store whose first write of ``key`` loses: another run writes ``body`` there just before."""
    done: list[bool] = []

    def hook(operation: str, touched: str) -> None:
        if operation == "put" and touched == key and not done:
            done.append(True)
            current = inner.get(key)
            inner.put(key, body, expected_version=current.version if current else None)

    return HookedStore(inner, hook)


def test_the_source_marker_written_first_by_another_run_of_the_same_source(tmp_path: Path) -> None:
    inner = LocalObjectStore(tmp_path)
    store = rival_writes_first(inner, SOURCE_KEY, json.dumps({"source": "simulator"}).encode())
    check_source(store, "simulator", tmp_path)
    assert store.count("put", prefix=SOURCE_KEY) == 1  # lost once, then read what the other run wrote
    assert json.loads(inner.get(SOURCE_KEY).body) == {"source": "simulator"}


def test_the_source_marker_written_first_by_a_run_of_the_other_source(tmp_path: Path) -> None:
    inner = LocalObjectStore(tmp_path)
    store = rival_writes_first(inner, SOURCE_KEY, json.dumps({"source": "tiingo"}).encode())
    with pytest.raises(SourceMismatch):
        check_source(store, "simulator", tmp_path)


def test_a_merge_that_loses_keeps_the_other_runs_entries(tmp_path: Path) -> None:
    inner = LocalObjectStore(tmp_path)
    key = "backfill/local-catchup.json"
    store = rival_writes_first(inner, key, json.dumps({"MSFT": "2024-06-14"}).encode())
    put_json_merged(store, key, {"AAPL": "2024-06-14"})
    assert store.count("put", prefix=key) == 2
    assert json.loads(inner.get(key).body) == {"AAPL": "2024-06-14", "MSFT": "2024-06-14"}


def test_a_universe_write_that_loses_is_done_again(tmp_path: Path) -> None:
    inner = LocalObjectStore(tmp_path)
    store = rival_writes_first(inner, UNIVERSE_KEY, json.dumps(["SPY"]).encode())
    save_universe(store, ["AAPL", "MSFT"])
    assert store.count("put", prefix=UNIVERSE_KEY) == 2
    assert load_universe(inner) == ["AAPL", "MSFT"]
