"""Structured JSON logs (one object per line) and CloudWatch Embedded Metric Format.

CloudWatch turns an EMF log line into metrics without any API call, so alarms cost nothing extra.
Every line passes ``errors.scrub`` as a whole, just before it is written: whatever a message, an extra
field or an exception carries, no registered secret leaves through the logs. An exception is logged as
its type, its cleaned message and the frames it passed (file, line, function: no values).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Mapping
from typing import Any

from stockpipe.errors import clean_message, scrub
from stockpipe.layout import METRIC_NAMESPACE
from stockpipe.settings import LogSettings

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is at emit time (Lambda ships stdout; test capture swaps it)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "timestamp": round(record.created, 3),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            entry["exception"] = f"{type(exc).__name__}: {clean_message(exc, 500)}"  # scrubbed, then cut
            entry["frames"] = [
                f"{frame.filename.rpartition('/')[2]}:{frame.lineno} {frame.name}"
                for frame in traceback.extract_tb(exc.__traceback__)
            ]
        return scrub(json.dumps(entry, default=str))


def get_logger(name: str) -> logging.Logger:
    """A logger writing JSON lines to stdout (what Lambda ships to CloudWatch Logs)."""
    root = logging.getLogger("stockpipe")
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
        root.setLevel(LogSettings.from_env(os.environ).level)
        root.propagate = False
    return logging.getLogger(f"stockpipe.{name}" if not name.startswith("stockpipe") else name)


def emf_fields(
    metrics: Mapping[str, float], *, dimensions: Mapping[str, str], unit: str = "Count"
) -> dict[str, Any]:
    """Fields that make a JSON log line an EMF record for METRIC_NAMESPACE."""
    return {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": METRIC_NAMESPACE,
                    "Dimensions": [list(dimensions)],
                    "Metrics": [{"Name": name, "Unit": unit} for name in metrics],
                }
            ],
        },
        **dimensions,
        **metrics,
    }
