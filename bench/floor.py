"""The libraries' floor of the daily run: per ticker, the same I/O done with the same libraries, plainly.

For each ticker, exactly what the daily catch-up cannot avoid, written the simplest way:
1. one httpx GET of the same prices URL with the same parameters (the same response) and ``.json()``;
2. one boto3 GetObject of the ticker's current-year object (the object the catch-up reads);
3. one Parquet read of it (``pq.ParquetFile(...).read()``, pyarrow's plain file read);
4. one Parquet write of that table (zstd, as the store writes) and one boto3 PutObject of the bytes,
   into a scratch bucket so that the next day finds the same state.

Nothing else: no merge, validation, retry policy, conditional write, logging or metrics. Run in a
thread pool of the same size as the scraper's, on one httpx.Client and one boto3 client (what any
correct simple program does). The CPU time of this process during the loop, divided by the tickers,
is the floor that ``daily_cpu_ms_per_ticker`` compares the scraper with.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

import httpx
import pyarrow.parquet as pq

from stockpipe.layout import price_key


class Floor:
    def __init__(self, *, base_url: str, token: str, s3: Any, bucket: str, scratch: str, concurrency: int):
        self.http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Token {token}"},
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            timeout=30,
        )
        self.s3 = s3
        self.bucket = bucket
        self.scratch = scratch
        self.concurrency = concurrency

    def ticker(self, ticker: str, start: date, end: date) -> int:
        response = self.http.get(
            f"/tiingo/daily/{ticker}/prices",
            params={"startDate": start.isoformat(), "endDate": end.isoformat()},
        )
        response.raise_for_status()
        rows = response.json()
        key = price_key(ticker, end.year)
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        table = pq.ParquetFile(io.BytesIO(body)).read()
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        self.s3.put_object(Bucket=self.scratch, Key=key, Body=sink.getvalue())
        return len(rows)

    def run(self, tickers: list[str], start: date, end: date) -> int:
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="floor") as pool:
            return sum(pool.map(lambda t: self.ticker(t, start, end), tickers))

    def close(self) -> None:
        self.http.close()
