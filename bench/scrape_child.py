"""One scraper Lambda invocation in a fresh interpreter, through the real handler module.

``python -S -m bench.scrape_child <json>`` with only the function's requirements on the path (see
harness.image_site): peak RSS is then what the function needs, without the parent's simulator, moto or
the dev venv's extras. Reports peak RSS, the most sockets and threads seen open during the call.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench.harness import emit, peak_rss_mb, sampler


def main(args: dict[str, Any]) -> None:
    os.environ.update(args["env"])
    import lambda_function

    runtime = lambda_function.runtime()
    now = datetime.fromisoformat(args["now"]).replace(tzinfo=UTC)
    runtime.clock = lambda: now
    rss_before = peak_rss_mb()
    started = time.perf_counter()
    with sampler(0.02) as peak:
        summary = lambda_function.lambda_handler(args["event"], None)
    emit(
        {
            "seconds": time.perf_counter() - started,
            "rss_mb": peak_rss_mb(),
            "rss_after_init_mb": rss_before,
            "max_sockets": peak["sockets"],
            "max_threads": peak["threads"],
            "tickers": summary["tickers"],
            "failed": len(summary["failed"]),
            "requests": summary["requests"],
            "rows": summary["rows_written"],
        }
    )


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
