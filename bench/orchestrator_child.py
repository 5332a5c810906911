"""One orchestrator cold start in a fresh interpreter: a run of a few steps, then the status answer.

``python [-S] -m bench.orchestrator_child <json>`` (see harness.run_child). The orchestrator is built
the way its Lambda builds it (``orchestrator_from_env`` over the environment, after importing the
handler module), with two substitutions through that function's public parameters: the S3 client
carries an S3Meter, and the invoker is ``InProcessInvoker(instant_scraper)``, which answers every chunk
at once with the scraper's summary shape, so the figures are the orchestrator's own work.

A step's boundary is the orchestrator's listener (called once per finished step). At concurrency 1 the
time and S3 traffic between the first and the last listener call, divided by the steps in between, is
the steady-state cost of one step (pick, claim, invoke, record); what a run does once (reading the
universe and progress, the summary) falls before the first or after the last call and is reported
apart.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from datetime import date, timedelta
from typing import Any

from bench.harness import emit, peak_rss_mb
from bench.s3meter import Reading, S3Meter

PROGRESS_AREA = "backfill"  # progress lives under backfill/ (README: storage layout)


def trading_days(start: date, end: date) -> int:
    """Weekdays in [start, end] (holidays ignored: only "some rows" matters to the orchestrator)."""
    days = (end - start).days + 1
    weeks, rest = divmod(days, 7)
    return weeks * 5 + sum(1 for i in range(rest) if (start + timedelta(days=i)).weekday() < 5)


def instant_scraper(event: dict[str, Any]) -> dict[str, Any]:
    """The scraper's summary for a range event, as if every ticker's rows had been stored."""
    start, end = date.fromisoformat(event["start_date"]), date.fromisoformat(event["end_date"])
    rows = max(1, trading_days(start, end))
    succeeded = {
        ticker: {
            "rows": rows,
            "start": event["start_date"],
            "end": event["end_date"],
            "requests": 1,
            "retries": 0,
            "rewritten": False,
        }
        for ticker in event["tickers"]
    }
    return {
        "mode": "range",
        "tickers": len(succeeded),
        "succeeded": succeeded,
        "failed": {},
        "rows_written": rows * len(succeeded),
        "requests": len(succeeded),
        "retries": 0,
        "duration_ms": 0,
    }


def build(env: dict[str, str], today: date, meter: S3Meter, listener: Any = None) -> Any:
    """The orchestrator as its Lambda builds it, with the metered S3 client and the instant scraper."""
    import boto3

    from stockpipe.backfill.invoker import InProcessInvoker
    from stockpipe.backfill.runtime import orchestrator_from_env

    return orchestrator_from_env(
        env,
        s3_client=meter.attach(boto3.client("s3")),
        invoker=InProcessInvoker(instant_scraper),
        today=lambda: today,
        listener=listener,
    )


def main(args: dict[str, Any]) -> None:
    os.environ.update(args["env"])
    import backfill_orchestrator  # noqa: F401 - the handler module: the same imports as the Lambda

    meter = S3Meter()
    marks: list[tuple[float, Reading, float]] = []
    orchestrator = build(
        dict(os.environ),
        date.fromisoformat(args["today"]),
        meter,
        listener=lambda *_: marks.append((time.perf_counter(), meter.reading(), time.process_time())),
    )
    rss_init = peak_rss_mb()
    before = meter.reading()
    run_started = time.perf_counter()
    answer = orchestrator.handle({})
    run_s = time.perf_counter() - run_started
    after_run = meter.reading()
    rss_run = peak_rss_mb()
    started = time.perf_counter()
    status = orchestrator.handle({"action": "status"})
    status_s = time.perf_counter() - started
    status_bytes = len(json.dumps(status).encode())  # what the Lambda runtime would serialise
    emit(
        {
            **per_step(marks, before, after_run, run_s, started_at=run_started),
            "stopped": answer.get("stopped"),
            "run_s": run_s,
            "run_answer_bytes": len(json.dumps(answer).encode()),
            "run_progress_bytes": (after_run - before).bytes(PROGRESS_AREA),
            "run_requests": (after_run - before).by_operation(),
            "status_s": status_s,
            "status_bytes": status_bytes,
            "status_requests": (meter.reading() - after_run).by_operation(),
            "rss_after_init_mb": rss_init,
            "rss_after_run_mb": rss_run,
            "rss_mb": peak_rss_mb(),
        }
    )


def per_step(
    marks: list[tuple[float, Reading, float]],
    before: Reading,
    after: Reading,
    run_s: float,
    *,
    started_at: float,
) -> dict[str, Any]:
    """Steady-state cost of one step from the listener marks (whole-run figures when there are < 2)."""
    steps = len(marks)
    if steps < 2:
        total = after - before
        n = max(steps, 1)
        return {
            "steps": steps,
            "step_ms": run_s * 1000 / n,
            "step_cpu_ms": None,
            "step_progress_bytes": total.bytes(PROGRESS_AREA) / n,
            "step_requests": {op: k / n for op, k in total.by_operation(PROGRESS_AREA).items()},
            "step_intervals_ms": [],
            "before_first_step_ms": None,
            "marginal": False,
        }
    (t_first, r_first, cpu_first), (t_last, r_last, cpu_last) = marks[0], marks[-1]
    between = r_last - r_first
    n = steps - 1
    return {
        "steps": steps,
        "step_ms": (t_last - t_first) * 1000 / n,
        "step_cpu_ms": (cpu_last - cpu_first) * 1000 / n,  # this process only (moto is another)
        "step_progress_bytes": between.bytes(PROGRESS_AREA) / n,
        "step_requests": {op: k / n for op, k in between.by_operation(PROGRESS_AREA).items()},
        "step_intervals_ms": [(b[0] - a[0]) * 1000 for a, b in itertools.pairwise(marks)],
        "before_first_step_ms": (t_first - started_at) * 1000,
        "first_step_progress_bytes": (r_first - before).bytes(PROGRESS_AREA),
        "marginal": True,
    }


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
