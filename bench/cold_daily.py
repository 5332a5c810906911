"""Scenario 9 (issue 14): S3 requests per ticker in a cold-start daily run of 30-year tickers.

Two universes of N tickers, each ticker with 30 years stored (31 year objects, written by one range
scrape on day D0, not counted):
- "event": every ticker had a dividend on the trading day before D0. The next day's catch-up (D1)
  re-reads a week of bars, sees that dividend and asks whether stored rows predate it: the
  corporate-action check, which needs the ticker's oldest fetch time. The rows were fetched on D0,
  after the dividend, so nothing is rewritten; the check only has to find that out;
- "quiet": no split or dividend in any ticker's lookback window (picked from the simulator's
  history), so no check is needed.

The daily run is a cold start: a runtime built by ``scraper.runtime_from_env`` in this process for the
run, as the Lambda builds it (nothing remembered from the seeding), with the Lambda's empty event.
Requests are counted at that runtime's S3 client (bench.s3meter), retries included. Value: the event
universe's requests per ticker (the run's own reads, like the universe, shared over its N tickers).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from bench.backfill_requests import FIRST_DATE
from bench.daily import LOOKBACK_DAYS, evening, next_trading_day
from bench.harness import TOKEN, Context, Metric, SimulatorProcess, check
from bench.s3meter import S3Meter
from stockpipe import scraper
from stockpipe.objectstore import S3ObjectStore
from stockpipe.universe import save_universe
from stockpipe_local.simulator import DEFAULT_TICKERS, TiingoSimulator

D0 = date(2024, 6, 14)  # a Friday: the seeding day
D_EVENT = date(2024, 6, 13)  # the dividend (event universe), inside D1's lookback window, before D0
D1 = next_trading_day(D0)


def quiet_tickers(n: int) -> list[str]:
    """N simulator tickers with no split or dividend from two lookbacks before D0 to D1."""
    candidates = {f"QUIET{i}": FIRST_DATE for i in range(50 * n)}
    reference = TiingoSimulator(tickers={**DEFAULT_TICKERS, **candidates}, today=D1)
    since = D0 - timedelta(days=2 * LOOKBACK_DAYS)
    found = []
    for ticker in candidates:
        rows = reference.history(ticker, since, D1)
        if all(row["divCash"] == 0 and row["splitFactor"] == 1 for row in rows):
            found.append(ticker)
            if len(found) == n:
                return found
    raise AssertionError(f"fewer than {n} quiet tickers among {len(candidates)}")


def cold_run(
    ctx: Context, sim: SimulatorProcess, tickers: list[str], years: int, meter: S3Meter | None = None
) -> dict[str, Any]:
    s3 = ctx.moto.client()
    bucket = ctx.moto.new_bucket("cold")
    save_universe(S3ObjectStore(bucket, s3), tickers)
    env = {
        "DATA_BUCKET": bucket,
        "TIINGO_API_TOKEN": TOKEN,
        "TIINGO_BASE_URL": sim.base_url,
        "LOOKBACK_DAYS": str(LOOKBACK_DAYS),
        "SCRAPER_CONCURRENCY": "4",
    }
    sim.call("set", today=D0.isoformat())
    seeding = scraper.runtime_from_env(env, s3_client=s3)
    seeding.clock = lambda: evening(D0)
    start = date(D0.year - years, D0.month, D0.day)
    seeded = scraper.handle({"tickers": tickers, "start_date": str(start), "end_date": str(D0)}, seeding)
    assert not seeded["failed"], seeded["failed"]
    seeding.client.close()

    sim.call("set", today=D1.isoformat())
    meter = meter or S3Meter()
    cold = scraper.runtime_from_env(env, s3_client=meter.attach(ctx.moto.client()))
    cold.clock = lambda: evening(D1)
    summary = scraper.handle({}, cold)
    cold.client.close()
    assert not summary["failed"], summary["failed"]
    reading = meter.reading()
    return {
        "requests": reading.total_requests(),
        "by_operation": reading.by_operation(),
        "by_area": {area: reading.total_requests(area) for area in sorted({a for _, a in reading.requests})},
        "rewritten": sum(1 for s in summary["succeeded"].values() if s.get("rewritten")),
        "tiingo_requests": summary["requests"],
    }


def run(ctx: Context) -> list[Metric]:
    n, years = ctx.pick(4, 10, tiny=1), ctx.pick(30, 30, tiny=3)
    event = [f"EVENT{i}" for i in range(n)]
    quiet = quiet_tickers(n)
    first_dates = {t: FIRST_DATE.isoformat() for t in [*event, *quiet]}
    with SimulatorProcess(token=TOKEN, today=D0, latency=0.0, first_dates=first_dates) as sim:
        for ticker in event:
            sim.call("add_event", ticker=ticker, day=D_EVENT.isoformat(), div_cash=0.25)
        figures = {"event": cold_run(ctx, sim, event, years), "quiet": cold_run(ctx, sim, quiet, years)}
    ctx.details["cold_daily"] = figures
    per = {k: v["requests"] / n for k, v in figures.items()}
    ctx.log(f"cold daily: {per['event']:.1f} S3 requests/ticker with an event, {per['quiet']:.1f} without")
    ev, qu = figures["event"], figures["quiet"]
    return [
        Metric(
            "daily_s3_requests_per_ticker_cold",
            per["event"],
            "requests",
            None,
            "<= 2.5 (30-year ticker)",
            met=check(per["event"], "<=", 2.5),
            note=f"{n} tickers x {years} years, each with a dividend in its lookback window (no rewrite due: "
            f"{ev['rewritten']} rewritten); cold runtime; S3 {ev['by_operation']}; "
            f"quiet tickers (no event in the window): {per['quiet']:.2f}/ticker {qu['by_operation']}",
        )
    ]
