"""`make bench`: the pipeline measured against its bounds (quota, latency) and a naive peer, same run.

Run ``python -m bench [--quick] [--only NAME ...] [--output bench-results.json]``. Every scenario
module exposes ``run(ctx) -> list[Metric]``; the harness keeps the moto server and simulator processes.
"""
