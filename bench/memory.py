"""Scenario 5: peak RSS of the scraper in its own interpreter (image-like: only requirements.txt installed).

- rss_daily_mb: the daily catch-up of scenario 1 (N tickers, seeded history, 50 ms latency);
- rss_30y_mb: one ticker's 30 years in a single request (about 7,500 rows, 31 year objects).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from bench.daily import FIRST_DAY, DailySetup, evening
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
)

SCRAPER_REQUIREMENTS = ROOT / "lambdas" / "tiingo_price_scraper" / "requirements.txt"
SCRAPER_DOCKERFILE = SCRAPER_REQUIREMENTS.with_name("Dockerfile")


def scrape_in_child(ctx: Context, env: dict[str, str], event: Any, day: date) -> dict[str, Any]:
    return run_child(
        "bench.scrape_child",
        {
            "env": {**ctx.moto.env(), **dockerfile_env(SCRAPER_DOCKERFILE), **env},
            "event": event,
            "now": evening(day).replace(tzinfo=None).isoformat(),
        },
        site=image_site(SCRAPER_REQUIREMENTS),
    )


def run(ctx: Context) -> list[Metric]:
    n = ctx.pick(50, 500, tiny=10)
    with SimulatorProcess(token=TOKEN, today=FIRST_DAY, latency=0.05) as sim:
        setup = DailySetup(ctx, sim, n)
        setup.seed()
        day = setup.advance()
        daily = scrape_in_child(ctx, setup.env, {}, day)
        setup.runtime.client.close()
        assert daily["failed"] == 0, daily
        sim.call("set", latency=0.0)
        bucket = ctx.moto.new_bucket("rss30y")
        env = {**setup.env, "DATA_BUCKET": bucket}
        start = date(day.year - 30, day.month, day.day)
        thirty = scrape_in_child(
            ctx, env, {"tickers": ["AAPL"], "start_date": str(start), "end_date": str(day)}, day
        )
        assert thirty["failed"] == 0, thirty
    ctx.details["rss_daily"] = daily
    ctx.details["rss_30y"] = thirty
    ctx.log(f"rss daily {daily['rss_mb']:.0f} MB, 30y {thirty['rss_mb']:.0f} MB")
    return [
        Metric(
            "rss_daily_mb",
            daily["rss_mb"],
            "MB",
            None,
            "<= 200 MB",
            met=check(daily["rss_mb"], "<=", 200),
            note=f"{n}-ticker catch-up in a fresh interpreter; "
            f"{daily['rss_after_init_mb']:.0f} MB after imports "
            f"and runtime init; at most {daily['max_sockets']} sockets, {daily['max_threads']} threads open",
        ),
        Metric(
            "rss_30y_mb",
            thirty["rss_mb"],
            "MB",
            None,
            "<= 150 MB",
            met=check(thirty["rss_mb"], "<=", 150),
            note=f"AAPL {start}..{day}: {thirty['rows']} rows in {thirty['requests']} request(s); "
            f"{thirty['rss_after_init_mb']:.0f} MB after imports and runtime init",
        ),
    ]
