"""The printed table and bench-results.json (the JSON shape is a contract checked from outside)."""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.harness import Metric

# The metric names issues 5 and 14 fix; scenarios may add more (the 10k-ticker load figures, or the
# orchestrator rows named by their universe size in a --tiny run).
METRIC_NAMES = (
    "daily_vs_bound",
    "daily_vs_naive",
    "backfill_quota_use",
    "backfill_self_429",
    "backfill_requests_vs_min",
    "resume_repeated_requests",
    "cold_import_scraper",
    "cold_import_orchestrator",
    "rss_daily_mb",
    "rss_30y_mb",
    "image_mb_scraper",
    "image_mb_orchestrator",
    "parquet_write_vs_pyarrow",
    # issue 14
    "backfill_requests_per_ticker",
    "orchestrator_step_ms_25k",
    "orchestrator_rss_mb_25k",
    "progress_bytes_per_step_25k",
    "status_bytes_25k",
    "daily_cpu_ms_per_ticker",
    "daily_vs_bound_150ms",
    "daily_vs_naive_150ms",
    "daily_s3_requests_per_ticker_cold",
)
ENTRY_KEYS = ("value", "unit", "baseline", "ratio", "target")


def to_json(metrics: Sequence[Metric]) -> dict[str, dict[str, Any]]:
    return {m.name: m.as_json() for m in metrics}


def write_json(metrics: Sequence[Metric], path: Path) -> None:
    path.write_text(json.dumps(to_json(metrics), indent=2) + "\n")


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if x == 0 or abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def _status(metric: Metric) -> str:
    return {True: "ok", False: "MISSED", None: ""}[metric.met]


def table(metrics: Sequence[Metric], *, markdown: bool = False) -> str:
    """A fixed-width table for the terminal, or a Markdown table for docs/performance.md."""
    header = ("metric", "value", "unit", "baseline / bound", "ratio", "target", "")
    rows = [
        (m.name, _fmt(m.value), m.unit, _fmt(m.baseline), _fmt(m.ratio), m.target, _status(m))
        for m in metrics
    ]
    if markdown:
        lines = ["| " + " | ".join(header[:-1]) + " | met |", "|" + "---|" * len(header)]
        lines += [
            "| " + " | ".join(f"`{r[0]}`" if i == 0 else r[i] for i in range(len(r))) + " |" for r in rows
        ]
        return "\n".join(lines)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    notes = [f"  {m.name}: {m.note}" for m in metrics if m.note]
    if notes:
        out += ["", "notes:", *notes]
    return "\n".join(out)


def machine() -> str:
    import os

    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{python}, {os.cpu_count()} CPUs, {platform.machine()}"
