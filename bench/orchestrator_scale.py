"""Scenario 7 (issue 14): the orchestrator at 25,000 tickers, mid-backfill.

Setup (not timed), through public contracts only:
- the universe: ``config/universe.json`` written with ``save_universe``;
- the progress: a ``backfill/progress.json`` in its documented version-1 JSON shape, every ticker
  planned over 30 years with 0..60 six-month chunks done (one in 61 finished). Writing that one file is
  the fast way to a 25k-ticker state: planning 25k tickers through the orchestrator costs 25k steps.
  An implementation that stores progress differently converts this file on its first run (issue 14's
  migration), so the next step reads the state as the implementation keeps it;
- a warm-up run of one step in this process (the migration, if any; its time is logged).

Measured in a fresh image-like interpreter (bench.orchestrator_child, only the orchestrator's
requirements.txt installed): a cold start that runs a few chunk steps at concurrency 1 against an
instant scraper, then answers ``{"action": "status"}``. Rows: the time and the progress bytes (read +
written under ``backfill/``, counted at the S3 client) of one steady-state step, the peak RSS, and the
size of the status answer.
"""

from __future__ import annotations

import calendar
import json
from datetime import date
from typing import Any

from bench.harness import (
    ROOT,
    TOKEN,
    Context,
    Metric,
    SimulatorProcess,
    check,
    dockerfile_env,
    image_site,
    run_child,
    timed,
)
from bench.orchestrator_child import PROGRESS_AREA, build
from bench.s3meter import S3Meter
from stockpipe.objectstore import S3ObjectStore
from stockpipe.universe import save_universe

TODAY = date(2024, 6, 14)
YEARS = 30
CHUNK_MONTHS = 6
LEGACY_PROGRESS_KEY = "backfill/progress.json"  # version 1: one JSON object for every ticker
ORCHESTRATOR_REQUIREMENTS = ROOT / "lambdas" / "tiingo_backfill_orchestrator" / "requirements.txt"
ORCHESTRATOR_DOCKERFILE = ORCHESTRATOR_REQUIREMENTS.with_name("Dockerfile")
KB, MB = 1024, 1024 * 1024


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def ticker_names(n: int) -> list[str]:
    return [f"U{i:05d}" for i in range(n)]


def legacy_progress(names: list[str], start: date, end: date) -> bytes:
    """``{"version": 1, "tickers": {...}}`` as progress.json's writer lays it out (README: Progress).

    Ticker i has ``i % 61`` of its 60 chunks done (61: finished), so runs find work at the front of the
    universe and the file has the size a real mid-backfill has.
    """
    chunks = 0
    while add_months(start, CHUNK_MONTHS * chunks) <= end:
        chunks += 1
    records = {}
    for i, name in enumerate(names):
        done_chunks = min(i % (chunks + 1), chunks)
        finished = done_chunks == chunks
        records[name] = {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "next_start": None if finished else add_months(start, CHUNK_MONTHS * done_chunks).isoformat(),
            "done": finished,
            "attempts": 0,
            "last_error": None,
            "parked": False,
            "first_date": "1990-01-02",
            "updated_at": f"{end.isoformat()}T12:00:00+00:00",
            "planned": True,
            "lease": None,
            "chunks_done": done_chunks,
            "rows": done_chunks * 126,
            "requests": 1 + done_chunks,
        }
    return json.dumps({"version": 1, "tickers": records}, indent=1).encode()


def seed(ctx: Context, n: int) -> tuple[str, dict[str, Any]]:
    bucket = ctx.moto.new_bucket(f"orch{n}")
    store = S3ObjectStore(bucket, ctx.moto.client())
    names = ticker_names(n)
    save_universe(store, names)
    start = date(TODAY.year - YEARS, TODAY.month, TODAY.day)
    body = legacy_progress(names, start, TODAY)
    store.put(LEGACY_PROGRESS_KEY, body, expected_version=None, content_type="application/json")
    return bucket, {"progress_json_bytes": len(body), "start": start}


def environment(bucket: str, base_url: str, start: date, steps: int) -> dict[str, str]:
    return {
        "DATA_BUCKET": bucket,
        "TIINGO_API_TOKEN": TOKEN,
        "TIINGO_BASE_URL": base_url,  # a simulator, in case an implementation wants metadata
        "BACKFILL_START_DATE": start.isoformat(),
        "BACKFILL_CHUNK_MONTHS": str(CHUNK_MONTHS),
        "BACKFILL_CONCURRENCY": "1",
        "BACKFILL_REQUEST_BUDGET": str(steps),
        "BACKFILL_REQUESTS_PER_STEP": "1",
        "TIINGO_REQUESTS_PER_HOUR": "0",
        "AWS_LAMBDA_FUNCTION_NAME": "bench-orchestrator",
    }


def measure(ctx: Context, n: int, steps: int) -> dict[str, Any]:
    seconds, (bucket, facts) = timed(lambda: seed(ctx, n))
    size_mb = facts["progress_json_bytes"] / MB
    ctx.log(f"orchestrator {n:,}: seeded universe + progress.json ({size_mb:.1f} MB) in {seconds:.1f}s")
    with SimulatorProcess(token=TOKEN, today=TODAY, latency=0.0) as sim:
        warm_env = {**ctx.moto.env(), **environment(bucket, sim.base_url, facts["start"], 1)}
        warm_meter = S3Meter()
        orchestrator = build(warm_env, TODAY, warm_meter)
        warm_s, warm = timed(lambda: orchestrator.handle({}))
        ctx.log(
            f"orchestrator {n:,}: warm-up run (1 step; any progress migration) {warm_s:.1f}s, "
            f"S3 {warm_meter.reading().by_operation()}"
        )
        env = {
            **ctx.moto.env(),
            **dockerfile_env(ORCHESTRATOR_DOCKERFILE),
            **environment(bucket, sim.base_url, facts["start"], steps),
        }
        site = None if ctx.tiny else image_site(ORCHESTRATOR_REQUIREMENTS)
        result = run_child("bench.orchestrator_child", {"env": env, "today": TODAY.isoformat()}, site=site)
        metadata_requests = sim.call("count", kind="metadata")
    return {**facts, **result, "warm_up_s": warm_s, "warm_up_stopped": warm.get("stopped"),
            "metadata_requests": metadata_requests}  # fmt: skip


def run(ctx: Context) -> list[Metric]:
    n = ctx.pick(25_000, 25_000, tiny=300)
    steps = ctx.pick(4, 8, tiny=3)
    r = measure(ctx, n, steps)
    ctx.details["orchestrator_scale"] = r
    label = f"{n // 1000}k" if n % 1000 == 0 else str(n)
    ctx.log(
        f"orchestrator {n:,}: {r['steps']} steps, {r['step_ms']:.0f} ms/step, "
        f"{r['step_progress_bytes'] / KB:,.0f} KB progress/step, rss {r['rss_mb']:.0f} MB, "
        f"status {r['status_bytes'] / KB:,.0f} KB in {r['status_s']:.1f}s"
    )
    where = (
        f"{n:,} tickers x {YEARS} years planned (v1 progress.json {r['progress_json_bytes'] / MB:.1f} MB), "
        f"cold start, {r['steps']} chunk steps at concurrency 1, instant scraper"
    )
    intervals = ", ".join(f"{ms:.0f}" for ms in r["step_intervals_ms"])
    fixed = r.get("before_first_step_ms")
    return [
        Metric(
            f"orchestrator_step_ms_{label}",
            r["step_ms"],
            "ms",
            None,
            "<= 100 ms",
            met=check(r["step_ms"], "<=", 100),
            note=f"{where}; between-step intervals {intervals} ms"
            + (f" ({r['step_cpu_ms']:.0f} ms CPU per step)" if r.get("step_cpu_ms") is not None else "")
            + f"; run {r['run_s']:.1f}s in all "
            + (f"({fixed:.0f} ms before the first step ended)" if fixed is not None else "(no listener)")
            + f"; run answer {r['run_answer_bytes'] / KB:,.0f} KB",
        ),
        Metric(
            f"orchestrator_rss_mb_{label}",
            r["rss_mb"],
            "MB",
            None,
            "<= 200 MB",
            met=check(r["rss_mb"], "<=", 200),
            note=f"peak over the run and the status answer in a fresh image-like interpreter; "
            f"{r['rss_after_init_mb']:.0f} MB after imports and init, {r['rss_after_run_mb']:.0f} MB "
            "after the run",
        ),
        Metric(
            f"progress_bytes_per_step_{label}",
            r["step_progress_bytes"] / KB,
            "KB",
            None,
            "<= 64 KB",
            met=check(r["step_progress_bytes"] / KB, "<=", 64),
            note=f"bytes read + written under {PROGRESS_AREA}/ per steady-state step, counted at the S3 "
            f"client; S3 requests per step {fmt_ops(r['step_requests'])}; the run read/wrote "
            f"{r['run_progress_bytes'] / MB:,.1f} MB of progress in all",
        ),
        Metric(
            f"status_bytes_{label}",
            r["status_bytes"] / MB,
            "MB",
            6.0,
            "<= 1 MB (Lambda's response limit: 6 MB)",
            met=check(r["status_bytes"] / MB, "<=", 1),
            note=f'json.dumps of the {{"action": "status"}} answer; answered in {r["status_s"]:.1f}s with '
            f"S3 {fmt_ops(r['status_requests'])}",
        ),
    ]


def fmt_ops(ops: dict[str, float]) -> str:
    return ", ".join(f"{op} {k:.3g}" for op, k in ops.items()) or "none"
