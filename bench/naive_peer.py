"""What a tiingo-python user writes: a sequential loop, one plain HTTP call per ticker, a pandas
DataFrame and ``to_parquet``, stored in the same layout (one object per ticker-year) and bucket type.

pandas is a benchmark-only dependency; nothing under lambdas/ imports it.
"""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import httpx
import pandas as pd

from stockpipe.pricestore import object_key


def scrape(
    tickers: list[str], start: date, end: date, *, base_url: str, token: str, s3: Any, bucket: str
) -> int:
    """Fetch [start, end] for each ticker and overwrite its year objects; returns rows written."""
    rows_written = 0
    for ticker in tickers:
        response = httpx.get(
            f"{base_url}/tiingo/daily/{ticker}/prices",
            params={"startDate": start.isoformat(), "endDate": end.isoformat()},
            headers={"Authorization": f"Token {token}"},
            timeout=30,
        )
        response.raise_for_status()
        frame = pd.DataFrame(response.json())
        if frame.empty:
            continue
        frame["date"] = pd.to_datetime(frame["date"]).dt.date
        years = pd.to_datetime(frame["date"]).dt.year
        for year, part in frame.groupby(years):
            buffer = io.BytesIO()
            part.to_parquet(buffer, index=False, compression="zstd")
            s3.put_object(Bucket=bucket, Key=object_key(ticker, int(year)), Body=buffer.getvalue())
        rows_written += len(frame)
    return rows_written
