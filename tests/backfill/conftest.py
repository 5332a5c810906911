"""Fixtures of the backfill tests (helpers live in backfill_fakes.py)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from stockpipe.logs import JsonFormatter
from stockpipe.objectstore import S3ObjectStore
from tests.backfill.backfill_fakes import KNOWN, World


@pytest.fixture
def world(s3_client, bucket: str) -> World:
    """A fresh moto bucket with a fake Tiingo behind the in-process invoker."""
    return World(S3ObjectStore(bucket, s3_client), dict(KNOWN))


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The JSON lines the stockpipe loggers write (what CloudWatch would receive)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("stockpipe")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)
