"""The ticker universe: ``config/universe.json`` in the data bucket, written by the Pulumi program."""

from __future__ import annotations

import json

from stockpipe.layout import UNIVERSE_KEY
from stockpipe.objectstore import ObjectStore, StoredObject, compare_and_swap
from stockpipe.tickers import normalize_tickers

__all__ = ["UNIVERSE_KEY", "load_universe", "parse_universe", "save_universe"]


def load_universe(store: ObjectStore) -> list[str]:
    """The stored universe, validated; ValueError naming the object when missing or malformed."""
    return parse_universe(store.get(UNIVERSE_KEY), store.describe(UNIVERSE_KEY))


def parse_universe(stored: StoredObject | None, where: str) -> list[str]:
    """``stored`` (the object at ``where``, None: absent) as the universe, as ``load_universe`` reads it."""
    if stored is None:
        raise ValueError(
            f"no tickers given and no universe at {where} (pulumi up writes it from stack config)"
        )
    try:
        tickers = json.loads(stored.body)
    except ValueError:
        raise ValueError(f"{where} is not valid JSON") from None
    if not isinstance(tickers, list):
        raise ValueError(f"{where} must be a JSON list of tickers, got {type(tickers).__name__}")
    return normalize_tickers(tickers)


def save_universe(store: ObjectStore, tickers: list[str]) -> None:
    """Used by local runs and tests; in AWS the Pulumi program writes this object. A write that loses a
    race to another run's is done again over what that run wrote (``compare_and_swap``)."""
    body = json.dumps(normalize_tickers(tickers)).encode()

    def attempt(_lost: int) -> None:
        current = store.get(UNIVERSE_KEY)
        store.put(
            UNIVERSE_KEY,
            body,
            expected_version=current.version if current else None,
            content_type="application/json",
        )

    compare_and_swap(attempt, what=store.describe(UNIVERSE_KEY))
