"""The budget figures of issue 9, measured over the Tiingo simulator (loopback HTTP) and the REAL scraper.

    .venv/bin/python tests/backfill/budget_figures.py

1. Requests a run reports vs requests Tiingo received, with budget 7 and a Lambda service that answers
   HTTP 500 after the scraper ran (two invocations out of three), through ``LambdaInvoker``'s own boto3
   client (its retry configuration is what is measured).
2. Requests a fault-free run spends with the default budget (40, 5 reserved per step) at concurrency
   1, 2 and 4.

It uses only names that exist before and after the refactoring (``Orchestrator``, ``BackfillSettings``,
``TiingoMetadataSource`` from ``stockpipe.backfill.orchestrator``), so the same file measures both; the
tests in test_budget.py assert the "after" figures.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT, ROOT / "lambdas"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from stockpipe import scraper  # noqa: E402
from stockpipe.backfill.invoker import InProcessInvoker, LambdaInvoker  # noqa: E402
from stockpipe.backfill.orchestrator import BackfillSettings, Orchestrator, TiingoMetadataSource  # noqa: E402
from stockpipe.objectstore import LocalObjectStore  # noqa: E402
from stockpipe.tiingo import TiingoClient  # noqa: E402
from stockpipe_local.simulator import TiingoSimulator  # noqa: E402
from tests.loopback import LoopbackServer, Reply, Request, json_reply  # noqa: E402

TOKEN = "tok-BUDGET-figures-1234"
TODAY = date(2024, 6, 14)
HISTORY = {
    "AAPL": date(1990, 1, 2),
    "MSFT": date(1990, 1, 2),
    "IBM": date(1990, 1, 2),
    "KO": date(1990, 1, 2),
}
FUNCTION = "tiingo-price-scraper-figures"
# One chunk per request where the setting exists (issue 14): the run then has more work than its budget.
ONE_CHUNK = (
    {"max_chunks_per_request": 1} if "max_chunks_per_request" in BackfillSettings.__dataclass_fields__ else {}
)


class FlakyLambdaService(LoopbackServer):
    """The Lambda Invoke API on loopback: runs ``handler``, then answers 500 unless the invocation's
    number is a multiple of ``succeed_every`` (the function ran, its answer is lost: what a
    Lambda-service 5xx after the fact is). Started at once; ``close()`` stops it."""

    def __init__(
        self, handler: Callable[[dict[str, Any]], Any], *, succeed_every: int = 3, throttle: bool = False
    ) -> None:
        """``throttle``: answer 429 TooManyRequestsException *without* running the function instead."""
        super().__init__(self._invoke)
        self.handler = handler
        self.succeed_every = succeed_every
        self.throttle = throttle
        self.invocations = 0
        self.lock = threading.Lock()
        self.start()

    def _invoke(self, request: Request) -> Reply:
        if self.throttle:
            with self.lock:
                self.invocations += 1
            refused = {
                "Type": "User",
                "message": "Rate Exceeded.",
                "Reason": "ConcurrentInvocationLimitExceeded",
            }
            return json_reply(refused, 429, **{"x-amzn-ErrorType": "TooManyRequestsException"})
        payload = self.handler(json.loads(request.body or b"{}"))
        with self.lock:
            self.invocations += 1
            fail = self.invocations % self.succeed_every != 0
        if fail:
            lost = {"Type": "Service", "message": "internal failure"}
            return json_reply(lost, 500, **{"x-amzn-ErrorType": "ServiceException"})
        return 200, {}, json.dumps(payload, default=str).encode()


@contextmanager
def world() -> Iterator[tuple[TiingoSimulator, LocalObjectStore, TiingoClient, scraper.ScraperRuntime]]:
    with (
        tempfile.TemporaryDirectory(prefix="budget-figures-") as root,
        TiingoSimulator(token=TOKEN, today=TODAY, tickers=HISTORY, generated_prefix=None) as sim,
    ):
        store = LocalObjectStore(root)
        client = TiingoClient(TOKEN, base_url=sim.base_url, sleep=lambda _: None, timeout=5.0)
        runtime = scraper.ScraperRuntime(store, client, clock=lambda: datetime(2024, 6, 14, 23, tzinfo=UTC))
        try:
            yield sim, store, client, runtime
        finally:
            client.close()


def lambda_5xx_runs(runs: int = 3, budget: int = 7) -> list[tuple[int, int]]:
    """(reported, received) per run, through LambdaInvoker's own boto3 client."""
    figures = []
    saved = dict(os.environ)
    with world() as (sim, store, client, runtime):
        service = FlakyLambdaService(lambda event: scraper.handle(event, runtime))
        os.environ.update(
            AWS_ENDPOINT_URL_LAMBDA=service.url,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
        )
        os.environ.pop("AWS_MAX_ATTEMPTS", None)
        try:
            settings = BackfillSettings(
                start_date=date(2020, 1, 1), request_budget=budget, requests_per_hour=0
            )
            for _ in range(runs):
                orchestrator = Orchestrator(
                    store,
                    LambdaInvoker(FUNCTION),
                    TiingoMetadataSource(lambda: client),
                    settings,
                    today=lambda: TODAY,
                )
                before = sim.count()
                summary = orchestrator.run(["AAPL"])
                figures.append((summary["requests"], sim.count() - before))
        finally:
            service.close()
            os.environ.clear()
            os.environ.update(saved)
    return figures


def spent_at(concurrency: int) -> tuple[int, int]:
    """(reported, received) of one fault-free run with the default budget settings."""
    with world() as (sim, store, client, runtime):
        orchestrator = Orchestrator(
            store,
            InProcessInvoker(lambda event: scraper.handle(event, runtime)),
            TiingoMetadataSource(lambda: client),
            BackfillSettings(start_date=date(1990, 1, 1), concurrency=concurrency, **ONE_CHUNK),
            today=lambda: TODAY,
        )
        summary = orchestrator.run(list(HISTORY))
        return summary["requests"], sim.count()


def main() -> int:
    logging.getLogger("stockpipe").setLevel(logging.WARNING)
    print("budget 7, Lambda-service 500 after the scraper ran (2 invokes of 3):")
    for number, (reported, received) in enumerate(lambda_5xx_runs(), 1):
        print(f"  run {number}: reported {reported}, Tiingo received {received}")
    print("default budget 40 (5 reserved per step), fault-free:")
    for concurrency in (1, 2, 4):
        reported, received = spent_at(concurrency)
        print(f"  concurrency {concurrency}: reported {reported}, Tiingo received {received}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
