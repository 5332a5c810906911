"""How the orchestrator runs one scraper chunk: a synchronous Lambda invoke in AWS, a call locally.

Both return the scraper's summary dict or raise an InvokeError whose class says what failed, so the
run loop never needs to know where the scraper ran::

    StockpipeError
    └── InvokeError              invoke          the invocation failed (Lambda service, network, status)
        ├── InvalidEventError    invalid_event   the scraper refused the event (its ValueError)
        ├── FunctionError        function_error  the scraper crashed, timed out or ran out of memory
        ├── BadSummaryError      bad_summary     it answered, but not with a scrape summary
        └── ThrottledError       rate_limited    Lambda refused to start it (429): concurrency used up

An invoke is never retried here: the scraper may have run (and spent Tiingo requests) before the
answer was lost, so a retry would spend them again, uncounted. A failed chunk is retried by a later run.
``may_have_spent`` says whether the failed invocation may have cost Tiingo requests: only a throttle
is known not to have (Lambda answers 429 TooManyRequestsException without running the function,
API_Invoke), and like Tiingo's quota it stops the run without counting against the ticker.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from stockpipe.errors import FailureKind, StockpipeError, clean_message

# A synchronous invoke can last the scraper's whole timeout (at most 15 minutes): the read timeout
# must outlive it.
INVOKE_READ_TIMEOUT = 905
# botocore's retry settings for the invoke: one attempt in total, no retry on a 5xx, a throttle, a
# timeout or a connection error (each could run the chunk twice). ``total_max_attempts`` counts the first
# attempt and takes precedence over ``max_attempts`` (which counts retries) and over AWS_MAX_ATTEMPTS /
# the config file (botocore.config.Config, botocore.args._compute_retry_max_attempts).
NO_RETRIES = {"mode": "standard", "total_max_attempts": 1}


class InvokeError(StockpipeError):
    """The scraper invocation itself failed (not one ticker inside it)."""

    kind = FailureKind.INVOKE
    may_have_spent = True  # the scraper may have run: the step is charged its worst case


class InvalidEventError(InvokeError):
    """The scraper refused the event with ValueError: a bug in the orchestrator, never retried away."""

    kind = FailureKind.INVALID_EVENT


class FunctionError(InvokeError):
    """The scraper raised, timed out or ran out of memory (Lambda's FunctionError)."""

    kind = FailureKind.FUNCTION_ERROR


class BadSummaryError(InvokeError):
    """The scraper answered with something that is not its summary."""

    kind = FailureKind.BAD_SUMMARY


class ThrottledError(InvokeError):
    """Lambda did not start the scraper (429 TooManyRequestsException: its concurrency is used up)."""

    kind = FailureKind.RATE_LIMITED
    may_have_spent = False


class Invoker(Protocol):
    def invoke(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Run the scraper on ``event`` and return its summary; InvokeError when it did not run."""


class InProcessInvoker:
    """Calls the scraper's Python entry point directly (local runs and tests)."""

    def __init__(self, handler: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.handler = handler

    def invoke(self, event: Mapping[str, Any]) -> dict[str, Any]:
        try:
            result = self.handler(dict(event))
        except ValueError as exc:
            raise InvalidEventError(f"ValueError: {clean_message(exc)}") from None
        return _check_summary(result)


class LambdaInvoker:
    """``lambda.invoke`` with InvocationType RequestResponse on SCRAPER_FUNCTION_NAME."""

    def __init__(self, function_name: str, client: Any = None) -> None:
        if not function_name:
            raise ValueError("SCRAPER_FUNCTION_NAME is required to invoke the scraper")
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "lambda",
                config=Config(read_timeout=INVOKE_READ_TIMEOUT, connect_timeout=10, retries=dict(NO_RETRIES)),
            )
        self.function_name = function_name
        self.client = client

    def invoke(self, event: Mapping[str, Any]) -> dict[str, Any]:
        try:
            response = self.client.invoke(
                FunctionName=self.function_name,
                InvocationType="RequestResponse",
                Payload=json.dumps(dict(event)).encode(),
            )
        except Exception as exc:  # botocore errors: throttling, missing function, network
            error = getattr(exc, "response", None)
            code = error.get("Error", {}).get("Code") if isinstance(error, dict) else None
            if code == "TooManyRequestsException":
                reason = clean_message(error.get("Reason") or "throttled", 80)  # type: ignore[union-attr]
                raise ThrottledError(
                    f"invoking {self.function_name} was refused: {code} ({reason})"
                ) from None
            raise InvokeError(f"invoking {self.function_name} failed: {code or type(exc).__name__}") from None
        payload = response["Payload"].read()
        return decode_invoke_response(
            response.get("StatusCode", 200), response.get("FunctionError"), payload, self.function_name
        )


def decode_invoke_response(
    status: int, function_error: str | None, payload: bytes, function_name: str = "scraper"
) -> dict[str, Any]:
    """The summary from an Invoke response; a FunctionError payload becomes InvokeError.

    The scraper raises ValueError for an invalid event; Lambda reports it as
    ``{"errorType": "ValueError", "errorMessage": ...}`` with FunctionError set.
    """
    try:
        body: Any = json.loads(payload) if payload else None
    except ValueError:
        body = None
    if function_error:
        error_type, message = "Error", payload.decode("utf-8", "replace")  # scrubbed, then cut
        if isinstance(body, dict):
            error_type = str(body.get("errorType") or error_type)
            message = str(body.get("errorMessage") or "")
        error = InvalidEventError if error_type == "ValueError" else FunctionError
        raise error(f"{function_name} failed: {clean_message(error_type, 60)}: {clean_message(message)}")
    if not 200 <= status < 300:
        raise InvokeError(f"{function_name} answered status {status}")
    if body is None:
        raise BadSummaryError(f"{function_name} returned no JSON summary")
    return _check_summary(body)


def _check_summary(result: Any) -> dict[str, Any]:
    if not isinstance(result, dict) or not isinstance(result.get("succeeded"), dict):
        raise BadSummaryError("the scraper returned no summary with 'succeeded'")
    if not isinstance(result.get("failed", {}), dict):
        raise BadSummaryError("the scraper summary's 'failed' is not an object")
    return result
