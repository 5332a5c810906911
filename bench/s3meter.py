"""Count what a boto3 S3 client sends and receives: requests per operation and key area, and body bytes.

Attached with botocore's event hooks to the client that the code under test is given
(``orchestrator_from_env(s3_client=...)``, ``scraper.runtime_from_env(s3_client=...)``), so it sees
every request whatever objects the implementation chooses to keep, without touching its internals:

- requests: one per HTTP request sent, retries included (1 + ``RetryAttempts`` of each API call);
  412/404 answers count too (a lost compare-and-swap is a request);
- bytes read: the object body of a GetObject (``Content-Length``) and the XML of a list;
- bytes written: the body of a PutObject.

The area of a request is the first path segment of its Key or Prefix (``backfill``, ``prices``,
``config``...), so "progress bytes" are the bytes of requests under ``backfill/``.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Reading:
    """A snapshot of the meter (subtract two snapshots for what happened in between)."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)  # (operation, area) -> requests
    read: Counter[str] = field(default_factory=Counter)  # area -> bytes received
    written: Counter[str] = field(default_factory=Counter)  # area -> bytes sent

    def __sub__(self, other: Reading) -> Reading:
        return Reading(self.requests - other.requests, self.read - other.read, self.written - other.written)

    def total_requests(self, area: str | None = None) -> int:
        return sum(n for (_, a), n in self.requests.items() if area is None or a == area)

    def bytes(self, area: str | None = None) -> int:
        """Bytes read plus bytes written (in ``area``, or everywhere)."""
        if area is None:
            return sum(self.read.values()) + sum(self.written.values())
        return self.read[area] + self.written[area]

    def by_operation(self, area: str | None = None) -> dict[str, int]:
        ops: Counter[str] = Counter()
        for (op, a), n in self.requests.items():
            if area is None or a == area:
                ops[op] += n
        return dict(sorted(ops.items()))


class S3Meter:
    """``trace=True`` also keeps every call as (operation, key or prefix, requests) for profiles."""

    def __init__(self, *, trace: bool = False) -> None:
        self.trace: list[tuple[str, str, int]] | None = [] if trace else None
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, str]] = Counter()
        self._read: Counter[str] = Counter()
        self._written: Counter[str] = Counter()

    def attach(self, client: Any) -> Any:
        """Count ``client``'s calls from now on; returns the client."""
        events = client.meta.events
        # First: botocore's own handlers turn a bytes Body into a file object.
        events.register_first(
            "before-parameter-build.s3", self._before, unique_id=f"bench-meter-b-{id(self)}"
        )
        events.register("after-call.s3", self._after, unique_id=f"bench-meter-a-{id(self)}")
        return client

    def reading(self) -> Reading:
        with self._lock:
            return Reading(Counter(self._requests), Counter(self._read), Counter(self._written))

    # ---- botocore hooks (called on the calling thread)

    @staticmethod
    def _before(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        where = params.get("Key") or params.get("Prefix") or ""
        body = params.get("Body")
        context["bench_where"] = str(where)
        context["bench_area"] = str(where).split("/", 1)[0]
        context["bench_sent"] = _size(body)

    def _after(
        self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        area = context.get("bench_area", "")
        attempts = 1 + int(parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0) or 0)
        if model.has_streaming_output:
            received = int(parsed.get("ContentLength") or 0)  # the body stream is the caller's to read
        else:
            received = len(http_response.content or b"")
        with self._lock:
            self._requests[(model.name, area)] += attempts
            self._read[area] += received
            self._written[area] += context.get("bench_sent", 0)
            if self.trace is not None:
                self.trace.append((model.name, context.get("bench_where", ""), attempts))


def _size(body: Any) -> int:
    if body is None:
        return 0
    if isinstance(body, bytes | bytearray):
        return len(body)
    if isinstance(body, str):
        return len(body.encode())
    if hasattr(body, "seek") and hasattr(body, "tell"):
        position = body.tell()
        size = body.seek(0, 2)
        body.seek(position)
        return size - position
    return 0
