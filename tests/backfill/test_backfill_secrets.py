"""The token never reaches progress.json, the run summary, the status answer or the logs (issue 9), even
when Tiingo's answer quotes it: a loopback Tiingo stand-in echoes it in the metadata ``startDate``, and
the real Tiingo client's error message (which quotes the bad value) goes through the orchestrator."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from stockpipe.backfill.steps import TiingoMetadataSource
from stockpipe.errors import forget_secrets, register_secret
from stockpipe.layout import ticker_progress_key
from stockpipe.logs import JsonFormatter
from stockpipe.tiingo import TiingoClient
from stockpipe.universe import save_universe
from tests.backfill.backfill_fakes import World

TOKEN = "tok-ECHOED-3b7d91c4e2"


class EchoingTiingo:
    """Answers every metadata request with HTTP 200 and ``startDate`` = ``echo`` (the token, somehow)."""

    def __init__(self, echo: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                symbol = self.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1].upper()
                body = json.dumps(
                    {"ticker": symbol, "name": "Echo Inc", "startDate": echo, "endDate": "2024-06-14"}
                )
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> EchoingTiingo:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def registered() -> Iterator[str]:
    """The token registered for scrubbing, as the client does where the token is resolved."""
    register_secret(TOKEN)
    yield TOKEN
    forget_secrets()


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("stockpipe")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.mark.parametrize("echo", [TOKEN, f"Token {TOKEN}", TOKEN.upper(), f"x{TOKEN}"])
def test_a_metadata_error_quoting_the_token_never_reaches_progress(
    world: World, registered: str, json_logs: io.StringIO, echo: str
) -> None:
    save_universe(world.store, ["AAPL"])
    world.scraper.known["AAPL"] = date(2030, 1, 1)  # [] for the whole range: the metadata decides
    with EchoingTiingo(echo) as tiingo:
        client = TiingoClient(TOKEN, base_url=tiingo.url, sleep=lambda _: None, timeout=5.0)
        orchestrator = world.orchestrator()
        orchestrator.metadata = TiingoMetadataSource(lambda: client)
        try:
            summary = orchestrator.run(["AAPL"])
        finally:
            client.close()
    assert summary["errors"]["AAPL"].startswith("bad_payload: ")
    assert "startDate" in summary["errors"]["AAPL"]  # the message still says what was wrong
    assert world.metadata.requests == 0  # the echoing stand-in answered the lookup
    stored = world.store.get(ticker_progress_key("AAPL"))
    assert stored is not None
    status = world.orchestrator().status()
    for text in (stored.body.decode(), json.dumps(summary), json.dumps(status), json_logs.getvalue()):
        assert TOKEN.lower() not in text.lower()
