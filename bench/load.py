"""Load (issue 6): a catch-up scrape of a 10,000-ticker universe, in a fresh image-like interpreter.

The universe comes from config/universe.json in the bucket (the schedule's empty event), so its size
never meets Lambda's event (256 KB async) or environment (4 KB) limits. Reported: peak RSS and the
most sockets and threads open at once, next to the same figures for scenario 1's smaller universe:
bounded means they do not grow with the number of tickers.
"""

from __future__ import annotations

from bench.daily import FIRST_DAY
from bench.harness import TOKEN, Context, Metric, SimulatorProcess, check
from bench.memory import scrape_in_child
from stockpipe.objectstore import S3ObjectStore
from stockpipe.universe import UNIVERSE_KEY, save_universe

CONCURRENCY = 8
LATENCY = 0.01
THREAD_BOUND = 2 * CONCURRENCY + 2


def run(ctx: Context) -> list[Metric]:
    n = ctx.pick(200, 10_000, tiny=40)
    small = ctx.pick(50, 200, tiny=10)
    figures = {}
    with SimulatorProcess(token=TOKEN, today=FIRST_DAY, latency=LATENCY) as sim:
        for size in (small, n):
            bucket = ctx.moto.new_bucket(f"load{size}")
            store = S3ObjectStore(bucket, ctx.moto.client())
            save_universe(store, [f"SIM{i}" for i in range(size)])
            universe_bytes = len(store.get(UNIVERSE_KEY).body)
            env = {
                "DATA_BUCKET": bucket,
                "TIINGO_API_TOKEN": TOKEN,
                "TIINGO_BASE_URL": sim.base_url,
                "SCRAPER_CONCURRENCY": str(CONCURRENCY),
            }
            result = scrape_in_child(ctx, env, {}, FIRST_DAY)
            assert result["failed"] == 0, result
            assert result["tickers"] == size, result
            figures[size] = {**result, "universe_bytes": universe_bytes}
            ctx.log(
                f"load {size}: {result['seconds']:.1f}s, rss {result['rss_mb']:.0f} MB, "
                f"{result['max_sockets']} sockets, {result['max_threads']} threads"
            )
    ctx.details["load"] = figures
    big, ref = figures[n], figures[small]
    bound = 2 * CONCURRENCY + 4
    label = f"load_{n // 1000}k" if n % 1000 == 0 else f"load_{n}"
    where = f"{n:,} tickers (catch-up, no history) vs {small} in the same conditions; {big['seconds']:.0f}s"
    return [
        Metric(
            f"{label}_rss_mb",
            big["rss_mb"],
            "MB",
            ref["rss_mb"],
            "<= 200 MB; ratio ~1 (no growth with tickers)",
            met=check(big["rss_mb"], "<=", 200),
            note=where,
        ),
        Metric(
            f"{label}_max_sockets",
            big["max_sockets"],
            "sockets",
            ref["max_sockets"],
            f"<= {bound} (Tiingo pool + S3 pool, independent of tickers)",
            met=check(big["max_sockets"], "<=", bound),
        ),
        Metric(
            f"{label}_max_threads",
            big["max_threads"],
            "threads",
            ref["max_threads"],
            # Two pools of `concurrency` threads (fetch and store: Tiingo always has `concurrency`
            # requests in flight while S3 reads and writes overlap them) plus main: bounded, and the
            # same at any universe size (the baseline is the small universe's figure).
            f"<= {THREAD_BOUND} (fetch pool + store pool + main, independent of tickers)",
            met=check(big["max_threads"], "<=", THREAD_BOUND) and big["max_threads"] <= ref["max_threads"],
        ),
        Metric(
            f"{label}_universe_kb",
            big["universe_bytes"] / 1024,
            "KB",
            256.0,
            "read from S3, never in the event (async event limit 256 KB)",
            met=True,
            note=f"config/universe.json of {n:,} tickers; the scraper also accepts up to 20,000 tickers "
            "per event",
        ),
    ]
