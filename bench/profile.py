"""Profiles behind issue 14's diagnosis (not bench rows): where the daily CPU, an orchestrator step at
25k tickers and a cold daily run's S3 requests go. Same servers and setups as the bench scenarios.

    python -m bench.profile daily [--tickers 200] [--concurrency 1]   # scraper and floor, per ticker
    python -m bench.profile step [--tickers 25000] [--steps 3]        # one orchestrator step
    python -m bench.profile cold [--years 30]                         # a cold daily run's S3 calls

CPU per ticker is measured without the profiler first; the profile (cProfile on a per-thread CPU
clock, in every thread) then splits it by library. The time of C and standard-library functions is
charged to the library that called them (``pq.write_table``'s C work counts as pyarrow, a socket read
under botocore as boto3). cProfile inflates Python-heavy code against C code, so the split is a
guide and the unprofiled total is the figure.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import pstats
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

from bench.harness import TOKEN, Context, MotoServer, SimulatorProcess

# (library label, substrings of a code file path), first match wins.
LIBRARIES = (
    ("stockpipe", ("/stockpipe/",)),
    ("boto3/botocore", ("/botocore/", "/boto3/", "/s3transfer/", "/urllib3/", "/dateutil/", "/jmespath/")),
    ("httpx", ("/httpx/", "/httpcore/", "/h11/", "/anyio/", "/idna/", "/certifi/")),
    ("pyarrow", ("/pyarrow/",)),
    ("json", ("/json/",)),
    ("logging", ("/logging/",)),
    ("threads", ("/threading.py", "/concurrent/", "/queue.py")),
    ("bench", ("/bench/",)),
)


def library(func: tuple[str, int, str]) -> str | None:
    """The library a function belongs to; None for the standard library and C functions."""
    filename = func[0]
    for label, parts in LIBRARIES:
        if any(part in filename for part in parts):
            return label
    return None


def by_library(stats: pstats.Stats) -> Counter[str]:
    """Self time per library. The self time of a C or standard-library function goes to the libraries
    of its callers, pro rata to the time spent under each caller (recursively up the call graph)."""
    totals: Counter[str] = Counter()
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]

    def charge(func: Any, amount: float, depth: int) -> None:
        label = library(func)
        if label is not None:
            totals[label] += amount
            return
        callers = raw.get(func, (0, 0, 0, 0, {}))[4]
        whole = sum(entry[3] for entry in callers.values())
        if not whole or depth > 30:
            totals[f"unattributed {func[2][:40]}"] += amount
            return
        for caller, entry in callers.items():
            charge(caller, amount * entry[3] / whole, depth + 1)

    for func, (_cc, _nc, tottime, _ct, _callers) in raw.items():
        if tottime:
            charge(func, tottime, 0)
    return totals


@contextlib.contextmanager
def profiled_threads() -> Iterator[list[cProfile.Profile]]:
    """cProfile in this thread and in every thread started inside the block."""
    profiles: list[cProfile.Profile] = []

    def start(*_: Any) -> None:
        profile = cProfile.Profile(time.thread_time)
        profiles.append(profile)
        profile.enable()  # replaces this hook for the thread

    main = cProfile.Profile(time.thread_time)
    profiles.append(main)
    threading.setprofile(start)
    main.enable()
    try:
        yield profiles
    finally:
        main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]


def merged(profiles: list[cProfile.Profile]) -> pstats.Stats:
    stats = pstats.Stats(profiles[0])
    for profile in profiles[1:]:
        with contextlib.suppress(TypeError):  # a thread that never ran a call
            stats.add(profile)
    return stats


def cpu_of(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, result


def report(
    title: str, cpu_ms: float, stats: pstats.Stats, per: int, focus: tuple[str, ...], top: int
) -> None:
    libs = by_library(stats)
    whole = sum(libs.values()) or 1.0
    print(f"\n== {title}: {cpu_ms:.2f} ms CPU per unit (unprofiled); profile split scaled to it")
    for label, seconds in libs.most_common(12):
        print(f"  {label:<28} {seconds / whole * cpu_ms:7.2f} ms  ({seconds / whole:5.1%})")
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = [
        (ct, tt, nc, func)
        for func, (_cc, nc, tt, ct, _callers) in raw.items()
        if any(f in func[0] for f in focus)
    ]
    print(f"  -- our functions by cumulative time (profiled ms per unit; {per} units) --")
    for ct, tt, nc, func in sorted(rows, reverse=True)[:top]:
        name = f"{func[0].rsplit('/', 1)[-1]}:{func[1]} {func[2]}"
        print(f"  {ct / per * 1000:8.2f} cum {tt / per * 1000:7.2f} self {nc / per:6.1f} calls  {name}")


def daily(args: argparse.Namespace) -> None:
    from bench.daily import FIRST_DAY, LOOKBACK_DAYS, DailySetup
    from bench.floor import Floor

    moto = MotoServer().start()
    try:
        ctx = Context(quick=True, moto=moto)
        with SimulatorProcess(token=TOKEN, today=FIRST_DAY, latency=0.0) as sim:
            setup = DailySetup(
                ctx, sim, args.tickers, concurrency=args.concurrency, latency=0.0, seed_start=date(2024, 1, 2)
            )
            setup.seed()
            floor = Floor(
                base_url=sim.base_url,
                token=TOKEN,
                s3=moto.client(),
                bucket=setup.bucket,
                scratch=moto.new_bucket("floor"),
                concurrency=args.concurrency,
            )
            n = args.tickers
            figures = {}
            for profile in (False, True):
                previous, day = setup.day, setup.advance()
                start = previous - timedelta(days=LOOKBACK_DAYS)
                sides = {"ours": setup.ours, "floor": lambda s=start, d=day: floor.run(setup.tickers, s, d)}
                for side, fn in sides.items():
                    if not profile:
                        cpu, wall, _ = cpu_of(fn)
                        figures[side] = cpu / n * 1000
                        print(
                            f"{side}: {cpu / n * 1000:.2f} ms CPU/ticker, wall {wall:.2f}s "
                            f"(concurrency {args.concurrency}, {n} tickers, {day})"
                        )
                        continue
                    with profiled_threads() as profiles:
                        fn()
                    report(
                        f"{side} per ticker",
                        figures[side],
                        merged(profiles),
                        n,
                        ("/stockpipe/",) if side == "ours" else ("/bench/floor",),
                        args.top,
                    )
            floor.close()
            setup.runtime.client.close()
    finally:
        moto.stop()


def step(args: argparse.Namespace) -> None:
    from bench.orchestrator_child import build
    from bench.orchestrator_scale import TODAY, environment, seed
    from bench.s3meter import S3Meter

    moto = MotoServer().start()
    try:
        ctx = Context(quick=True, moto=moto)
        bucket, facts = seed(ctx, args.tickers)
        with SimulatorProcess(token=TOKEN, today=TODAY, latency=0.0) as sim:
            env = {**moto.env(), **environment(bucket, sim.base_url, facts["start"], 1)}
            build(env, TODAY, S3Meter()).handle({})  # warm-up (and any migration)
            env = {**moto.env(), **environment(bucket, sim.base_url, facts["start"], args.steps)}
            meter = S3Meter()
            marks: list[tuple[float, float]] = []
            orchestrator = build(
                env,
                TODAY,
                meter,
                listener=lambda *_: marks.append((time.process_time(), time.perf_counter())),
            )
            cpu, wall, answer = cpu_of(lambda: orchestrator.handle({}))
            steps = len(marks)
            if steps > 1:
                step_cpu, step_wall = ((marks[-1][i] - marks[0][i]) / (steps - 1) * 1000 for i in (0, 1))
                print(
                    f"steady-state step at {args.tickers:,} tickers: "
                    f"{step_cpu:.0f} ms CPU, {step_wall:.0f} ms wall"
                )
            print(
                f"run of {steps} steps: {wall:.2f}s wall, {cpu:.2f}s CPU in this process; "
                f"S3 {meter.reading().by_operation()}"
            )
            run_ms = cpu * 1000 / max(steps, 1)
            orchestrator = build(env, TODAY, S3Meter())
            with profiled_threads() as profiles:
                orchestrator.handle({})
            report(
                f"orchestrator run of {steps} steps (unit: one step; run start-up and summary included)",
                run_ms,
                merged(profiles),
                steps,
                ("/stockpipe/",),
                args.top,
            )
            cpu, wall, _ = cpu_of(lambda: orchestrator.handle({"action": "status"}))
            with profiled_threads() as profiles:
                orchestrator.handle({"action": "status"})
            report("status answer", cpu * 1000, merged(profiles), 1, ("/stockpipe/",), 12)
            del answer
    finally:
        moto.stop()


def cold(args: argparse.Namespace) -> None:
    from bench import cold_daily
    from bench.s3meter import S3Meter

    moto = MotoServer().start()
    try:
        ctx = Context(quick=True, moto=moto)
        ticker, meter = "EVENT0", S3Meter(trace=True)
        with SimulatorProcess(
            token=TOKEN,
            today=cold_daily.D0,
            latency=0.0,
            first_dates={ticker: cold_daily.FIRST_DATE.isoformat()},
        ) as sim:
            sim.call("add_event", ticker=ticker, day=cold_daily.D_EVENT.isoformat(), div_cash=0.25)
            figures = cold_daily.cold_run(ctx, sim, [ticker], args.years, meter)
        print(
            f"cold daily run of one {args.years}-year ticker with a dividend in its window: "
            f"{figures['requests']} S3 requests {figures['by_operation']}"
        )
        for op, where, requests in meter.trace or []:
            print(f"  {op:<14} {where}{'' if requests == 1 else f'  ({requests} requests)'}")
    finally:
        moto.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("what", choices=("daily", "step", "cold"))
    parser.add_argument("--tickers", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--years", type=int, default=30)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    if args.tickers is None:
        args.tickers = {"daily": 200, "step": 25_000, "cold": 1}[args.what]
    {"daily": daily, "step": step, "cold": cold}[args.what](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
