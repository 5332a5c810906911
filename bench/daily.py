"""Scenario 1: daily catch-up of N tickers at 50 ms API latency.

Ours: the scraper handler (empty event: the stored universe, catch-up mode) over an S3 store on a
moto server process, against the simulator in its own process. Bound: ``N x latency / concurrency``
(the time the requests alone take with ``concurrency`` in flight). Peer: naive_peer in this same
process, on the same simulator and the same moto server. Every repeat advances the simulator one
trading day, so both sides fetch and write new rows each time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from bench import naive_peer
from bench.harness import TOKEN, Context, Metric, SimulatorProcess, check, cpu_seconds, median, timed
from stockpipe import scraper
from stockpipe.calendar import is_trading_day
from stockpipe.objectstore import S3ObjectStore
from stockpipe.universe import save_universe

LATENCY = 0.05
CONCURRENCY = 8
SEED_START = date(2024, 5, 1)
FIRST_DAY = date(2024, 5, 31)
LOOKBACK_DAYS = 7


def next_trading_day(day: date) -> date:
    day += timedelta(days=1)
    while not is_trading_day(day):
        day += timedelta(days=1)
    return day


def evening(day: date) -> datetime:
    return datetime.combine(day, time(23), UTC)


class DailySetup:
    """A seeded bucket (a month of history per ticker and the universe) and a runtime over it."""

    def __init__(
        self,
        ctx: Context,
        sim: SimulatorProcess,
        n: int,
        *,
        concurrency: int = CONCURRENCY,
        latency: float = LATENCY,
        seed_start: date = SEED_START,
    ) -> None:
        self.ctx = ctx
        self.sim = sim
        self.latency = latency
        self.seed_start = seed_start
        self.tickers = [f"SIM{i}" for i in range(n)]
        self.day = FIRST_DAY
        self.s3 = ctx.moto.client()
        self.bucket = ctx.moto.new_bucket("daily")
        env = {
            "DATA_BUCKET": self.bucket,
            "TIINGO_API_TOKEN": TOKEN,
            "TIINGO_BASE_URL": sim.base_url,
            "SCRAPER_CONCURRENCY": str(concurrency),
            "LOOKBACK_DAYS": str(LOOKBACK_DAYS),
        }
        self.env = env
        self.runtime = scraper.runtime_from_env(env, s3_client=self.s3)
        self.runtime.clock = lambda: evening(self.day)
        save_universe(S3ObjectStore(self.bucket, self.s3), self.tickers)

    def seed(self) -> None:
        """History from ``seed_start`` for every ticker, fetched at zero latency (not timed)."""
        self.sim.call("set", today=self.day.isoformat(), latency=0.0)
        summary = scraper.handle(
            {"start_date": self.seed_start.isoformat(), "end_date": self.day.isoformat()}, self.runtime
        )
        assert not summary["failed"], summary["failed"]
        self.sim.call("set", latency=self.latency)

    def advance(self) -> date:
        self.day = next_trading_day(self.day)
        self.sim.call("set", today=self.day.isoformat())
        return self.day

    def ours(self) -> dict[str, Any]:
        summary = scraper.handle({}, self.runtime)
        assert not summary["failed"], list(summary["failed"].items())[:3]
        return summary


def run(ctx: Context) -> list[Metric]:
    n = ctx.pick(50, 500, tiny=10)
    repeats = ctx.pick(1, 3)
    with SimulatorProcess(token=TOKEN, today=FIRST_DAY, latency=LATENCY) as sim:
        setup = DailySetup(ctx, sim, n)
        seconds, _ = timed(setup.seed)
        ctx.log(f"daily: seeded {n} tickers in {seconds:.1f}s")
        naive_bucket = ctx.moto.new_bucket("naive")
        ours_times, naive_times, requests, cpu = [], [], [], []
        for _ in range(repeats):
            day = setup.advance()
            sim.call("reset_stats")
            before = (cpu_seconds(), cpu_seconds(ctx.moto.pid), cpu_seconds(sim.pid))
            t_ours, summary = timed(setup.ours)
            after = (cpu_seconds(), cpu_seconds(ctx.moto.pid), cpu_seconds(sim.pid))
            cpu.append([b - a for a, b in zip(before, after, strict=True)])
            requests.append(sim.call("count"))
            t_naive, _ = timed(
                lambda d=day: naive_peer.scrape(
                    setup.tickers,
                    d - timedelta(days=LOOKBACK_DAYS + 1),
                    d,
                    base_url=sim.base_url,
                    token=TOKEN,
                    s3=setup.s3,
                    bucket=naive_bucket,
                )
            )
            ours_times.append(t_ours)
            naive_times.append(t_naive)
            ctx.log(f"daily {day}: ours {t_ours:.2f}s ({summary['requests']} requests), naive {t_naive:.2f}s")
        setup.runtime.client.close()
    ours_s, naive_s = median(ours_times), median(naive_times)
    bound = n * LATENCY / CONCURRENCY
    ours_cpu, moto_cpu, sim_cpu = (median([c[i] for c in cpu]) for i in range(3))
    ctx.details["daily"] = {
        "ours_s": ours_times,
        "naive_s": naive_times,
        "bound_s": bound,
        "requests": requests,
        "cpu_s": {"ours": ours_cpu, "moto": moto_cpu, "simulator": sim_cpu},
    }
    ratio_bound, ratio_naive = ours_s / bound, ours_s / naive_s
    where = (
        f"{n} tickers, {LATENCY * 1000:.0f} ms latency, concurrency {CONCURRENCY}, "
        "S3 on a moto server process"
    )
    return [
        Metric(
            "daily_vs_bound",
            ours_s,
            "s",
            bound,
            "ratio <= 1.25",
            met=check(ratio_bound, "<=", 1.25),
            note=f"{where}; median of {repeats}: {', '.join(f'{t:.2f}' for t in ours_times)} s; CPU during "
            f"ours: scraper {ours_cpu:.2f}s ({ours_cpu / n * 1000:.1f} ms/ticker), moto {moto_cpu:.2f}s, "
            f"simulator {sim_cpu:.2f}s",
        ),
        Metric(
            "daily_vs_naive",
            ours_s,
            "s",
            naive_s,
            "ratio <= 0.1 (>= 10x faster)",
            met=check(ratio_naive, "<=", 0.1),
            note=f"naive peer (sequential httpx.get + pandas + to_parquet) median of {repeats}: "
            f"{', '.join(f'{t:.1f}' for t in naive_times)} s; {naive_s / ours_s:.1f}x slower",
        ),
    ]
