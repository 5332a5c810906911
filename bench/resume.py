"""Scenario 3: resume cost. A backfill is killed halfway (an exception raised from the orchestrator's
step listener once half the steps are recorded, like a crash of the orchestrator process), then run
again. Figure: requests in the second run for steps the first run had already recorded as finished
(metadata lookups and chunks; target 0). Steps in flight at the crash were never recorded, so
fetching them again is expected and not counted.
"""

from __future__ import annotations

from typing import Any

from bench.backfill import TODAY, UNLIMITED, build
from bench.harness import TOKEN, Context, Metric, SimulatorProcess


class Crash(Exception):
    """The injected failure."""


def run(ctx: Context) -> list[Metric]:
    tickers, years = ctx.pick((5, 5), (20, 10), tiny=(3, 2))
    finished: set[tuple[Any, ...]] = set()
    crash_after: list[int] = []

    def listener(outcome: Any, progress: Any) -> None:
        if outcome.ok:
            work = outcome.work
            finished.add(
                (work.ticker, "metadata")
                if work.kind == "metadata"
                else (work.ticker, str(work.start), str(work.end))
            )
        if crash_after and len(finished) >= crash_after[0]:
            raise Crash("injected crash halfway through the backfill")

    with SimulatorProcess(token=TOKEN, today=TODAY, latency=0.005) as sim:
        first = build(ctx, sim, tickers=tickers, years=years, limiter=None, listener=listener)
        crash_after.append(first.minimum_requests // 2)
        try:
            first.orchestrator.run(budget=UNLIMITED)
            crashed = False
        except Crash:
            crashed = True
        first.close()
        requests_first = len(sim.call("records"))
        sim.call("reset_stats")
        crash_after.clear()
        bucket = first.orchestrator.store.bucket  # the same store: a new orchestrator process resumes
        second = build(ctx, sim, tickers=tickers, years=years, limiter=None, bucket=bucket)
        summary = second.orchestrator.run(budget=UNLIMITED)
        second.close()
        records = sim.call("records")
    assert crashed, "the injected crash did not happen"
    assert summary["stopped"] == "complete", summary
    repeated = 0
    for kind, ticker, start, end, _status, _t in records:
        key = (ticker, "metadata") if kind == "metadata" else (ticker, start, end)
        repeated += key in finished
    total = requests_first + len(records)
    ctx.details["resume"] = {
        "finished_before_crash": len(finished),
        "requests_first": requests_first,
        "requests_second": len(records),
        "repeated": repeated,
        "minimum": first.minimum_requests,
    }
    ctx.log(
        f"resume: {len(finished)} steps done before the crash, {repeated} repeated, {total} requests in all"
    )
    return [
        Metric(
            "resume_repeated_requests",
            repeated,
            "requests",
            None,
            "== 0",
            met=repeated == 0,
            note=f"{tickers} tickers x {years} years; "
            f"crash after {len(finished)} of {first.minimum_requests} steps; "
            f"{requests_first} + {len(records)} requests in the two runs (minimum {first.minimum_requests}; "
            f"the excess is the steps in flight at the crash)",
        )
    ]
