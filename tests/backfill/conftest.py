"""Fixtures of the backfill tests (helpers live in backfill_fakes.py)."""

from __future__ import annotations

import pytest

from stockpipe.objectstore import S3ObjectStore
from tests.backfill.backfill_fakes import KNOWN, World


@pytest.fixture
def world(s3_client, bucket: str) -> World:
    """A fresh moto bucket with a fake Tiingo behind the in-process invoker."""
    return World(S3ObjectStore(bucket, s3_client), dict(KNOWN))
