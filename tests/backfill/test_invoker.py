"""LambdaInvoker against the moto server's Lambda API (moto's docker-less backend), and the decoding of
Invoke responses."""

from __future__ import annotations

import io
import json
import urllib.request
import zipfile
from collections.abc import Iterator

import boto3
import pytest

from stockpipe.backfill.invoker import (
    BadSummaryError,
    FunctionError,
    InProcessInvoker,
    InvalidEventError,
    InvokeError,
    LambdaInvoker,
    ThrottledError,
    decode_invoke_response,
)
from stockpipe.errors import FailureKind, StockpipeError

SUMMARY = {
    "mode": "range",
    "succeeded": {
        "AAPL": {"rows": 3, "start": "2024-01-02", "end": "2024-01-04", "requests": 1, "retries": 0}
    },
    "failed": {},
    "rows_written": 3,
    "requests": 1,
    "retries": 0,
}


def _moto_api(endpoint: str, path: str, payload: dict) -> None:
    request = urllib.request.Request(
        f"{endpoint}/moto-api/{path}", data=json.dumps(payload).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


@pytest.fixture
def moto_function(moto_endpoint: str) -> Iterator[str]:
    """A function in moto's Lambda backend that runs without Docker (answers queued results)."""
    _moto_api(moto_endpoint, "config", {"lambda": {"use_docker": False}})
    iam = boto3.client("iam", endpoint_url=moto_endpoint)
    role = iam.create_role(RoleName="scraper-role-invoker-test", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("lambda_function.py", "def lambda_handler(event, context):\n    return event\n")
    client = boto3.client("lambda", endpoint_url=moto_endpoint)
    client.create_function(
        FunctionName="tiingo-price-scraper-moto",
        Runtime="python3.12",
        Role=role,
        Handler="lambda_function.lambda_handler",
        Code={"ZipFile": code.getvalue()},
    )
    yield "tiingo-price-scraper-moto"
    client.delete_function(FunctionName="tiingo-price-scraper-moto")
    iam.delete_role(RoleName="scraper-role-invoker-test")
    _moto_api(moto_endpoint, "config", {"lambda": {"use_docker": True}})


def test_lambda_invoker_round_trip_through_moto(moto_endpoint: str, moto_function: str) -> None:
    _moto_api(moto_endpoint, "static/lambda-simple/response", {"results": [json.dumps(SUMMARY)]})
    invoker = LambdaInvoker(moto_function, boto3.client("lambda", endpoint_url=moto_endpoint))
    assert (
        invoker.invoke({"tickers": ["AAPL"], "start_date": "2024-01-01", "end_date": "2024-01-05"}) == SUMMARY
    )
    # with nothing queued moto echoes the event back: a payload without a summary is never taken as done
    with pytest.raises(InvokeError, match="no summary with 'succeeded'"):
        invoker.invoke({"tickers": ["AAPL"], "start_date": "2024-01-01", "end_date": "2024-01-05"})


def test_lambda_invoker_missing_function(moto_endpoint: str) -> None:
    invoker = LambdaInvoker("does-not-exist", boto3.client("lambda", endpoint_url=moto_endpoint))
    with pytest.raises(InvokeError, match="does-not-exist failed: ResourceNotFoundException") as caught:
        invoker.invoke({})
    assert caught.value.kind == "invoke"


def test_lambda_invoker_needs_a_function_name() -> None:
    with pytest.raises(ValueError, match="SCRAPER_FUNCTION_NAME"):
        LambdaInvoker("", client=object())


@pytest.mark.parametrize(
    ("status", "function_error", "payload", "kind", "message"),
    [
        (
            200,
            "Unhandled",
            b'{"errorType": "ValueError", "errorMessage": "bad dates"}',
            "invalid_event",
            "bad dates",
        ),
        (
            200,
            "Unhandled",
            b'{"errorType": "Runtime.ExitError", "errorMessage": "OOM"}',
            "function_error",
            "OOM",
        ),
        (200, "Unhandled", b"Task timed out after 900.00 seconds", "function_error", "Task timed out"),
        (500, None, b"{}", "invoke", "status 500"),
        (200, None, b"[]", "bad_summary", "no summary"),
        (200, None, b'{"succeeded": {}, "failed": []}', "bad_summary", "'failed'"),
    ],
)
def test_decode_invoke_response_errors(
    status: int, function_error: str | None, payload: bytes, kind: str, message: str
) -> None:
    with pytest.raises(InvokeError, match=message) as caught:
        decode_invoke_response(status, function_error, payload)
    assert caught.value.kind == kind
    expected = {
        "invoke": InvokeError,
        "invalid_event": InvalidEventError,
        "function_error": FunctionError,
        "bad_summary": BadSummaryError,
    }[kind]
    assert type(caught.value) is expected  # the class says what failed, no instance flag


def test_invoke_errors_are_one_tree_with_their_kinds() -> None:
    assert issubclass(InvokeError, StockpipeError)
    for error in (InvalidEventError, FunctionError, BadSummaryError, ThrottledError):
        assert issubclass(error, InvokeError)
    assert [e.may_have_spent for e in (InvokeError, FunctionError, ThrottledError)] == [True, True, False]
    assert ThrottledError.kind == FailureKind.RATE_LIMITED  # stops the run, never counts against a ticker
    assert [e.kind for e in (InvokeError, InvalidEventError, FunctionError, BadSummaryError)] == [
        FailureKind.INVOKE,
        FailureKind.INVALID_EVENT,
        FailureKind.FUNCTION_ERROR,
        FailureKind.BAD_SUMMARY,
    ]


def test_in_process_invoker_maps_value_error() -> None:
    def handler(event: dict) -> dict:
        raise ValueError("unknown event key(s) ['x']")

    with pytest.raises(InvokeError, match="ValueError: unknown event key") as caught:
        InProcessInvoker(handler).invoke({"x": 1})
    assert caught.value.kind == "invalid_event"
    assert InProcessInvoker(lambda event: SUMMARY).invoke({}) == SUMMARY
