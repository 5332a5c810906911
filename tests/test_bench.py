"""Smoke test of `make bench`'s harness at tiny sizes: it runs end to end and writes the JSON contract.

Figures are not checked against targets here (speed belongs to the benchmark run itself).
"""

from __future__ import annotations

import json
import math

import pytest

from bench.__main__ import main
from bench.backfill import quota_use
from bench.harness import Metric
from bench.report import ENTRY_KEYS, METRIC_NAMES, table, to_json

EXPECTED = {
    "parquet_write": {"parquet_write_vs_pyarrow"},
    "backfill": {"backfill_quota_use", "backfill_self_429", "backfill_requests_vs_min"},
    "resume": {"resume_repeated_requests"},
    # issue 14
    "backfill_requests": {"backfill_requests_per_ticker"},
    "cold_daily": {"daily_s3_requests_per_ticker_cold"},
    "daily150": {"daily_vs_bound_150ms", "daily_vs_naive_150ms", "daily_cpu_ms_per_ticker"},
    # --tiny runs the 25k-ticker scenario with 300 tickers and names the rows by that size
    "orchestrator_scale": {
        "orchestrator_step_ms_300",
        "orchestrator_rss_mb_300",
        "progress_bytes_per_step_300",
        "status_bytes_300",
    },
}


@pytest.mark.slow
def test_tiny_run_writes_every_metric_in_the_contract_shape(tmp_path, capsys):
    output = tmp_path / "bench-results.json"
    assert main(["--tiny", "--only", *EXPECTED, "--output", str(output)]) == 0
    results = json.loads(output.read_text())
    assert set(results) == set().union(*EXPECTED.values())
    assert {name.replace("_300", "_25k") for name in results} <= set(METRIC_NAMES)
    for name, entry in results.items():
        assert tuple(entry) == ENTRY_KEYS, name
        assert isinstance(entry["value"], int | float), name
        assert math.isfinite(entry["value"]), name
        assert isinstance(entry["unit"], str), name
        assert entry["unit"], name
        assert isinstance(entry["target"], str), name
        assert entry["target"], name
        assert entry["baseline"] is None or isinstance(entry["baseline"], int | float), name
        assert entry["ratio"] is None or isinstance(entry["ratio"], int | float), name
    # Properties of the pipeline that hold at any size (unlike the speed figures).
    assert results["backfill_self_429"]["value"] == 0
    assert results["backfill_requests_vs_min"]["ratio"] == 1
    assert results["resume_repeated_requests"]["value"] == 0
    assert results["daily_cpu_ms_per_ticker"]["baseline"] > 0  # the floor was measured in the same run
    assert results["progress_bytes_per_step_300"]["value"] > 0  # the meter saw the progress traffic
    assert results["daily_s3_requests_per_ticker_cold"]["value"] >= 1  # each ticker-year object is written
    printed = capsys.readouterr().out
    for name in results:
        assert name in printed


def test_ratio_is_ours_over_baseline_and_json_has_exactly_the_contract_keys():
    metric = Metric("daily_vs_bound", 5.0, "s", 4.0, "ratio <= 1.25", met=False, note="n")
    entry = to_json([metric])["daily_vs_bound"]
    assert entry == {"value": 5.0, "unit": "s", "baseline": 4.0, "ratio": 1.25, "target": "ratio <= 1.25"}
    assert "MISSED" in table([metric])
    no_baseline = to_json([Metric("backfill_self_429", 0, "responses", None, "== 0")])["backfill_self_429"]
    assert no_baseline["baseline"] is None
    assert no_baseline["ratio"] is None


def test_quota_use_counts_successes_in_full_windows_only():
    # Windows of 1 s with a quota of 10: a partial first window (3), two full ones (10 and 9), a partial last.
    records = [["prices", "SIM1", None, None, 200, 100.5 + i * 0.01] for i in range(3)]
    records += [["prices", "SIM1", None, None, 200, 101.0 + i * 0.05] for i in range(10)]
    records += [["prices", "SIM1", None, None, 200, 102.0 + i * 0.05] for i in range(9)]
    records += [["prices", "SIM1", None, None, 429, 102.9]]
    records += [["prices", "SIM1", None, None, 200, 103.2]]
    use, windows = quota_use(records, quota=10, window=1.0)
    assert windows == 2
    assert use == pytest.approx(0.95)
