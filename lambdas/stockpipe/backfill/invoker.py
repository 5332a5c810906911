"""How the orchestrator runs one scraper chunk: a synchronous Lambda invoke in AWS, a call locally.

Both return the scraper's summary dict or raise InvokeError with a ``kind`` the progress records, so
the run loop never needs to know where the scraper ran.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from stockpipe.errors import StockpipeError

# A synchronous invoke can last the scraper's whole timeout (at most 15 minutes): the read timeout
# must outlive it, and botocore must never retry a timed-out invoke (it would run the chunk twice).
INVOKE_READ_TIMEOUT = 905


class InvokeError(StockpipeError):
    """The scraper invocation itself failed (not one ticker inside it)."""

    kind = "invoke"

    def __init__(self, message: str, *, kind: str = "invoke") -> None:
        super().__init__(message)
        self.kind = kind


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
            raise InvokeError(f"ValueError: {str(exc)[:300]}", kind="invalid_event") from None
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
                config=Config(
                    read_timeout=INVOKE_READ_TIMEOUT,
                    connect_timeout=10,
                    retries={"mode": "standard", "max_attempts": 3},
                ),
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
        error_type, message = "Error", payload[:200].decode("utf-8", "replace")
        if isinstance(body, dict):
            error_type = str(body.get("errorType") or error_type)
            message = str(body.get("errorMessage") or "")
        kind = "invalid_event" if error_type == "ValueError" else "function_error"
        raise InvokeError(f"{function_name} failed: {error_type}: {message[:300]}", kind=kind)
    if not 200 <= status < 300:
        raise InvokeError(f"{function_name} answered status {status}")
    if body is None:
        raise InvokeError(f"{function_name} returned no JSON summary", kind="bad_summary")
    return _check_summary(body)


def _check_summary(result: Any) -> dict[str, Any]:
    if not isinstance(result, dict) or not isinstance(result.get("succeeded"), dict):
        raise InvokeError("the scraper returned no summary with 'succeeded'", kind="bad_summary")
    if not isinstance(result.get("failed", {}), dict):
        raise InvokeError("the scraper summary's 'failed' is not an object", kind="bad_summary")
    return result
