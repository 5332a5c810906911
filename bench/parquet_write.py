"""Scenario 6b: the JSON -> Parquet write path (json.loads + rows_to_table + encode) in rows/second,
against pyarrow's own ceiling on the same rows (``pyarrow.json.read_json`` + ``pq.write_table``, zstd).

pyarrow.json reads newline-delimited objects, not Tiingo's JSON array, so the baseline gets the same
rows pre-converted to NDJSON (the conversion is not timed: it favours the baseline).
"""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime

import pyarrow.json as pajson
import pyarrow.parquet as pq

from bench.harness import Context, Metric, median, timed
from stockpipe.prices import rows_to_table
from stockpipe.pricestore import encode
from stockpipe_local.simulator import TiingoSimulator

TODAY = date(2024, 6, 14)
AS_OF = datetime(2024, 6, 14, 23, tzinfo=UTC)


def sample_body(years: int) -> bytes:
    """A ranged response body for one ticker, exactly as the simulator serves it."""
    sim = TiingoSimulator(today=TODAY)  # never started: history() is a pure function
    rows = sim.history("AAPL", date(TODAY.year - years, TODAY.month, TODAY.day), TODAY)
    return json.dumps(rows, separators=(",", ":")).encode()


def ours(body: bytes) -> bytes:
    return encode(rows_to_table(json.loads(body)), AS_OF)


def pyarrow_ceiling(ndjson: bytes) -> bytes:
    table = pajson.read_json(io.BytesIO(ndjson))
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def measure(years: int, repeats: int) -> tuple[int, float, float]:
    body = sample_body(years)
    rows = json.loads(body)
    ndjson = b"\n".join(json.dumps(row).encode() for row in rows)
    ours(body), pyarrow_ceiling(ndjson)  # warm-up: first-call imports and allocations
    ours_times, base_times = [], []
    for _ in range(repeats):  # interleaved so drift on a shared machine hits both alike
        ours_times.append(timed(lambda: ours(body))[0])
        base_times.append(timed(lambda: pyarrow_ceiling(ndjson))[0])
    return len(rows), median(ours_times), median(base_times)


def run(ctx: Context) -> list[Metric]:
    years, repeats = ctx.pick(30, 30, tiny=5), ctx.pick(15, 60, tiny=3)
    n, ours_s, base_s = measure(years, repeats)
    ours_rate, base_rate = n / ours_s, n / base_s
    ctx.log(f"parquet write: {n} rows; ours {ours_s * 1000:.1f} ms, pyarrow {base_s * 1000:.1f} ms")
    ctx.details["parquet_write"] = {"rows": n, "ours_ms": ours_s * 1000, "pyarrow_ms": base_s * 1000}
    ratio = ours_rate / base_rate
    return [
        Metric(
            "parquet_write_vs_pyarrow",
            ours_rate,
            "rows/s",
            base_rate,
            "report: ratio = ours / pyarrow rows/s (1.0 = the library's ceiling)",
            ratio=ratio,
            note=f"one {years}-year ticker ({n} rows) per call, median of {repeats}: "
            f"ours {ours_s * 1000:.1f} ms "
            f"(json.loads + rows_to_table + encode) vs pyarrow.json + write_table {base_s * 1000:.1f} ms",
        )
    ]
