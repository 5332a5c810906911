"""Fixtures of the Tiingo client tests: a client on the loopback simulator whose sleeps are recorded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stockpipe.tiingo import TiingoClient
from stockpipe_local.simulator import TiingoSimulator
from tests.conftest import TEST_TOKEN
from tests.fakes import CLIENT_MAX_RETRIES, SleepRecorder


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def client(simulator: TiingoSimulator, sleeps: SleepRecorder) -> Iterator[TiingoClient]:
    with TiingoClient(
        TEST_TOKEN, base_url=simulator.base_url, timeout=2.0, max_retries=CLIENT_MAX_RETRIES, sleep=sleeps
    ) as c:
        yield c
