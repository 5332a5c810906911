"""``python -m bench [--quick] [--only NAME ...] [--output bench-results.json] [--markdown FILE]``."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

from bench.harness import ROOT, Context, Metric, MotoServer
from bench.report import machine, table, write_json

# Scenario modules in run order (cheap and independent ones first).
SCENARIOS = (
    "parquet_write",
    "image_weight",
    "cold_import",
    "daily",
    "daily150",
    "memory",
    "backfill",
    "resume",
    "load",
    "orchestrator_scale",
    "backfill_requests",
    "cold_daily",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (< 1 min)")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, metavar="NAME", help=f"any of {SCENARIOS}")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: a smoke test of the harness itself")
    parser.add_argument("--output", type=Path, default=ROOT / "bench-results.json")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table as Markdown")
    args = parser.parse_args(argv)

    started = time.monotonic()
    moto = MotoServer().start()
    ctx = Context(quick=args.quick or args.tiny, moto=moto, tiny=args.tiny)
    metrics: list[Metric] = []
    failed: list[str] = []
    try:
        for name in args.only or SCENARIOS:
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            t0 = time.monotonic()
            try:
                module = importlib.import_module(f"bench.{name}")
                metrics.extend(module.run(ctx))
            except Exception:
                failed.append(name)
                traceback.print_exc()
            print(f"[bench] {name} done in {time.monotonic() - t0:.1f}s", file=sys.stderr, flush=True)
    finally:
        moto.stop()
    write_json(metrics, args.output)
    print()
    size = "tiny" if args.tiny else "quick" if args.quick else "full"
    print(f"bench ({size}) on {machine()}, {time.monotonic() - started:.0f}s")
    print(table(metrics))
    if args.markdown:
        args.markdown.write_text(table(metrics, markdown=True) + "\n")
    print(f"\nwrote {args.output}")
    if failed:
        print(f"scenarios that crashed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
