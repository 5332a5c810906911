"""Shared fixtures: a real moto server (boto3 reaches it via AWS_ENDPOINT_URL) and the Tiingo simulator."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator
from datetime import date

import boto3
import pytest
from moto.server import ThreadedMotoServer

from stockpipe_local.simulator import TiingoSimulator

TEST_TOKEN = "tok-CANARY-7f3a9c1e5b"  # a canary: tests assert it never leaks

_bucket_ids = itertools.count()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto server for the session; every test gets its own bucket."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in _AWS_ENV}
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
    )
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_AWS_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
)


@pytest.fixture
def s3_client(moto_endpoint: str):
    return boto3.client("s3", endpoint_url=moto_endpoint)


@pytest.fixture
def bucket(s3_client) -> str:
    name = f"stock-pipeline-test-{next(_bucket_ids)}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def simulator() -> Iterator[TiingoSimulator]:
    """A loopback Tiingo that accepts TEST_TOKEN; 'today' is Friday 2024-06-14."""
    with TiingoSimulator(token=TEST_TOKEN, today=date(2024, 6, 14)) as sim:
        yield sim
