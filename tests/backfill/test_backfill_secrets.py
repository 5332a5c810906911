"""The token never reaches progress.json, the run summary, the status answer or the logs (issue 9), even
when Tiingo's answer quotes it: a loopback Tiingo stand-in echoes it in the metadata ``startDate``, and
the real Tiingo client's error message (which quotes the bad value) goes through the orchestrator."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import date

import pytest

from stockpipe.backfill.steps import TiingoMetadataSource
from stockpipe.errors import forget_secrets, register_secret
from stockpipe.layout import ticker_progress_key
from stockpipe.tiingo import TiingoClient
from stockpipe.universe import save_universe
from tests.backfill.backfill_fakes import World
from tests.tiingo_standin import Arrived, Reply, TiingoStandIn, json_reply

TOKEN = "tok-ECHOED-3b7d91c4e2"


def echoing_tiingo(echo: str) -> TiingoStandIn:
    """Answers every metadata request with HTTP 200 and ``startDate`` = ``echo`` (the token, somehow)."""

    def answer(arrived: Arrived) -> Reply:
        symbol = arrived.path.rstrip("/").rsplit("/", 1)[-1].upper()
        return json_reply({"ticker": symbol, "name": "Echo Inc", "startDate": echo, "endDate": "2024-06-14"})

    return TiingoStandIn(answer)


@pytest.fixture
def registered() -> Iterator[str]:
    """The token registered for scrubbing, as the client does where the token is resolved."""
    register_secret(TOKEN)
    yield TOKEN
    forget_secrets()


@pytest.mark.parametrize("echo", [TOKEN, f"Token {TOKEN}", TOKEN.upper(), f"x{TOKEN}"])
def test_a_metadata_error_quoting_the_token_never_reaches_progress(
    world: World, registered: str, json_logs: io.StringIO, echo: str
) -> None:
    save_universe(world.store, ["AAPL"])
    world.scraper.known["AAPL"] = date(2030, 1, 1)  # [] for the whole range: the metadata decides
    with echoing_tiingo(echo) as tiingo:
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
