"""The token never leaves: not in messages, reprs, exception chains or logs, whatever Tiingo answers."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from datetime import date

import pytest

from stockpipe.errors import (
    NetworkError,
    TiingoError,
)
from stockpipe.tiingo import TiingoClient
from stockpipe_local.simulator import TiingoSimulator
from tests.conftest import TEST_TOKEN
from tests.fakes import SleepRecorder


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo += [item.__cause__, item.__context__]


def test_token_never_leaks(
    simulator: TiingoSimulator, sleeps: SleepRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    stockpipe_logger = logging.getLogger("stockpipe")
    stockpipe_logger.addHandler(caplog.handler)  # the JSON logger does not propagate to root
    old_level = stockpipe_logger.level
    stockpipe_logger.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)  # restored after the test
    simulator.slow_seconds = 1.0
    errors: list[BaseException] = []
    try:
        with TiingoClient(
            TEST_TOKEN, base_url=simulator.base_url, timeout=0.25, max_retries=1, sleep=sleeps
        ) as c:
            assert TEST_TOKEN not in repr(c)
            assert TEST_TOKEN not in str(vars(c).get("stats"))
            for fault in (
                "401",
                "403",
                "500",
                "reset",
                "timeout",
                "html",
                "truncated",
                "monthly_limit",
                "429",
            ):
                simulator.inject(fault, 2)
                try:
                    c.get_prices("AAPL", date(2024, 6, 10), date(2024, 6, 14))
                except TiingoError as exc:
                    errors.append(exc)
            for call in (lambda: c.get_metadata("NOPE"), lambda: c.get_latest("bad ticker")):
                try:
                    call()
                except (TiingoError, ValueError) as exc:
                    errors.append(exc)
        with TiingoClient(
            TEST_TOKEN, base_url="http://127.0.0.1:9", timeout=0.25, max_retries=0, sleep=sleeps
        ) as c:
            try:
                c.get_latest("AAPL")
            except NetworkError as exc:
                errors.append(exc)
    finally:
        stockpipe_logger.removeHandler(caplog.handler)
        stockpipe_logger.setLevel(old_level)
    assert len(errors) == 12
    for exc in errors:
        for item in _chain(exc):
            assert TEST_TOKEN not in str(item)
            assert TEST_TOKEN not in repr(item)
            assert TEST_TOKEN not in repr(vars(item))
        assert TEST_TOKEN not in "".join(traceback.format_exception(exc))
        assert exc.__context__ is None or not hasattr(exc.__context__, "request")
    assert caplog.records  # httpx / httpcore / our retry logs were captured
    assert any(r.name.startswith("httpx") for r in caplog.records)
    assert any(r.name == "stockpipe.tiingo" for r in caplog.records)
    for record in caplog.records:
        assert TEST_TOKEN not in record.getMessage()
        assert TEST_TOKEN not in repr(vars(record))
    assert TEST_TOKEN not in caplog.text


def test_constructor_validates_the_token_without_echoing_it() -> None:
    for bad in ("", "   ", "tok en", "tok\nen"):
        with pytest.raises(ValueError, match="token") as caught:
            TiingoClient(bad)
        assert bad.strip() not in str(caught.value) or not bad.strip()
