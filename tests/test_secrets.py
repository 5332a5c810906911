"""The token never leaves, and a rotated token takes effect at once.

A loopback Tiingo stand-in echoes the token back in every place a reply can carry it (a 200 price row,
the metadata ``startDate``, JSON/HTML/text error bodies at every position around the 200 and 1000
character cuts, upper-cased, in its ``Token <...>`` form); the scraper runs over moto S3 and nothing it
returns, logs or stores may hold the token or a piece of it. Rotation runs against moto's Secrets
Manager (the moto server of tests/conftest.py).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime

import boto3
import pytest

from stockpipe import scraper
from stockpipe.errors import AuthenticationError, BadPayloadError, TiingoError, scrub
from stockpipe.logs import JsonFormatter
from stockpipe.objectstore import S3ObjectStore
from stockpipe.prices import reply_table
from stockpipe.secrets import TokenSource, token_source_from_env
from stockpipe.tiingo import RequestStats, TiingoClient, client_from_env
from tests.conftest import TEST_TOKEN
from tests.fakes import Clock
from tests.tiingo_standin import Arrived, TiingoStandIn, bar, json_reply

EVENING = datetime(2024, 6, 14, 23, 0, tzinfo=UTC)
PIECES = ("CANARY", "7F3A9C1E5B")  # any part of TEST_TOKEN that is long enough to mean something
FORMS = (TEST_TOKEN, TEST_TOKEN.upper(), f"Token {TEST_TOKEN}")


def assert_clean(text: str) -> None:
    upper = text.upper()
    for piece in PIECES:
        assert piece not in upper, text


def error_bodies(form: str, position: int, filler: str) -> list[tuple[int, str, bytes]]:
    """The token at ``position`` of a JSON, an HTML and a plain-text error body."""
    text = filler * position + form + filler * 300
    return [
        (500, "application/json", json.dumps({"detail": text}).encode()),
        (502, "text/html", f"<html><body><h1>{text}</h1></body></html>".encode()),
        (400, "text/plain", text.encode()),
        (200, "text/plain", text.encode()),  # a 200 that is not JSON: bad_payload, quoting the text
    ]


# Every position at which the token straddles or touches a cut: the 200-character detail, the
# 1000 characters the client used to keep, and the 2000 it bounds an error page to (after scrubbing).
CUTS = [*range(200 - len(TEST_TOKEN) - 8, 201), *range(1000 - len(TEST_TOKEN), 1001), *range(1979, 2001)]


@pytest.mark.parametrize("filler", ["x", " "])
@pytest.mark.parametrize("form", FORMS, ids=["token", "upper", "Token-form"])
def test_error_bodies_never_leak_the_token_at_any_cut(form, filler):
    """Issue 9 regression: the text was cut at 1000 characters before it was scrubbed, so a token
    straddling the cut leaked its prefix (and whitespace collapsing moves the cut)."""
    script = [reply for position in CUTS for reply in error_bodies(form, position, filler) for _ in range(2)]
    replies = [(status, {"Content-Type": kind}, body) for status, kind, body in script]
    with TiingoStandIn.scripted(replies) as server:
        client = TiingoClient(TEST_TOKEN, base_url=server.url, max_retries=1, sleep=lambda s: None)
        with client:
            for _ in range(len(replies) // 2):
                with pytest.raises(TiingoError) as caught:
                    client.get_latest("AAPL")
                message = str(caught.value)
                assert "AAPL" in message
                assert_clean(message + repr(caught.value))


def test_metadata_start_date_echoing_the_token_is_named_not_quoted():
    """Issue 9 regression: `malformed startDate '…'` carried the token into the orchestrator's summary,
    logs, the CLI and backfill/progress.json."""
    body = {"ticker": "AAPL", "name": "Apple", "startDate": f"Token {TEST_TOKEN}", "endDate": "2024-06-14"}
    with (
        TiingoStandIn(lambda _a: json_reply(body)) as server,
        TiingoClient(TEST_TOKEN, base_url=server.url) as c,
        pytest.raises(BadPayloadError) as caught,
    ):
        c.get_metadata("AAPL")
    assert str(caught.value).startswith("Tiingo metadata for AAPL: startDate is not a Tiingo date")
    assert_clean(str(caught.value))


def test_the_scraper_returns_logs_and_stores_no_token(bucket, s3_client, capsys):
    """Echoed in 200 price rows (as a value, as a date, upper-cased), in error details and pages."""
    rows = {
        "AAPL": json_reply(
            [
                bar(date(2024, 6, 10)),
                bar(date(2024, 6, 11)) | {"close": f"Token {TEST_TOKEN}"},
                bar(TEST_TOKEN),
                bar(date(2024, 6, 12), open=TEST_TOKEN.upper()),
                {"date": "2024-06-13", "close": 1.0, TEST_TOKEN: TEST_TOKEN},  # an echo in a key: ignored
            ]
        ),
        "MSFT": json_reply({"detail": "x" * 990 + TEST_TOKEN}, 500),
        "SPY": (502, {"Content-Type": "text/html"}, f"<html>{' ' * 195}{TEST_TOKEN.upper()}</html>".encode()),
        "NVDA": json_reply({"detail": f"Invalid token {TEST_TOKEN}"}, 404),
    }

    def answer(arrived: Arrived):
        return rows[arrived.path.split("/")[3]]

    with TiingoStandIn(answer) as server:
        client = TiingoClient(TEST_TOKEN, base_url=server.url, max_retries=1, sleep=lambda s: None)
        runtime = scraper.ScraperRuntime(S3ObjectStore(bucket, s3_client), client, clock=lambda: EVENING)
        with client:
            summary = scraper.handle(
                {"tickers": list(rows), "start_date": "2024-06-03", "end_date": "2024-06-14"}, runtime
            )
    assert summary["succeeded"]["AAPL"]["rows"] == 2
    assert summary["succeeded"]["AAPL"]["rejected_rows"] == 3
    assert {summary["failed"][t]["error"] for t in ("MSFT", "SPY", "NVDA")} == {"server", "not_found"}
    stored = b"".join(runtime.store.get(k).body for k in runtime.store.list_keys("prices/"))
    assert_clean(json.dumps(summary) + capsys.readouterr().out + stored.decode("latin-1"))


def test_every_log_line_is_scrubbed_whatever_carries_the_token(capsys):
    TokenSource.fixed(TEST_TOKEN)  # resolving a token registers it with the one scrub
    log = logging.getLogger("stockpipe.test")
    record = log.makeRecord(
        "stockpipe.test",
        logging.ERROR,
        __file__,
        1,
        "request failed for %s",
        (TEST_TOKEN.upper(),),
        (ValueError, ValueError("y" * 497 + TEST_TOKEN), None),  # straddles the 500-character cut
        extra={"detail": {"nested": [f"Token {TEST_TOKEN}"]}, "_aws": {"x": TEST_TOKEN}},
    )
    line = JsonFormatter().format(record)
    assert_clean(line)
    entry = json.loads(line)
    assert entry["message"] == "request failed for ***"
    assert entry["exception"].startswith("ValueError: yyy")


def test_a_resolved_token_is_registered_at_once():
    token = "tok-REGISTERED-1234abcd"
    token_source_from_env({"TIINGO_API_TOKEN": f"  {token} "}, max_age_minutes=15)
    assert scrub(f"Authorization: Token {token.lower()}") == "Authorization: ***"


# ---------------------------------------------------------------- rotation (moto Secrets Manager)

OLD, NEW = "tok-OLD-aaaaaaaaaaaa", "tok-NEW-bbbbbbbbbbbb"


@pytest.fixture
def secret(moto_endpoint):
    client = boto3.client("secretsmanager", endpoint_url=moto_endpoint)
    name = f"tiingo-{id(client)}"
    arn = client.create_secret(Name=name, SecretString=OLD)["ARN"]
    yield client, arn
    client.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)


def test_the_token_is_re_read_after_its_maximum_age(secret):
    client, arn = secret
    clock = Clock()
    tokens = token_source_from_env(
        {"TIINGO_SECRET_ARN": arn}, max_age_minutes=15, secrets_client=client, clock=clock
    )
    assert tokens.current() == OLD
    client.put_secret_value(SecretId=arn, SecretString=NEW)  # rotated
    clock.now = 15 * 60 - 1
    assert tokens.current() == OLD  # cached: one Secrets Manager read per maximum age
    clock.now = 15 * 60
    assert tokens.current() == NEW
    assert scrub(f"x {NEW} {OLD} y") == "x *** *** y"


def test_a_refused_token_is_re_read_at_once_and_the_request_retried(secret):
    client, arn = secret
    accepted = [OLD]

    def answer(arrived: Arrived):
        if arrived.authorization != f"Token {accepted[0]}":
            return json_reply({"detail": "Invalid token."}, 401)
        return json_reply([bar(date(2024, 6, 14))])

    with TiingoStandIn(answer) as server:
        env = {"TIINGO_SECRET_ARN": arn, "TIINGO_BASE_URL": server.url}
        with client_from_env(env, secrets_client=client) as tiingo:
            assert reply_table(tiingo.get_latest("AAPL")).num_rows == 1
            client.put_secret_value(SecretId=arn, SecretString=NEW)  # rotated: Tiingo now wants NEW
            accepted[0] = NEW
            stats = RequestStats()
            assert reply_table(tiingo.get_latest("AAPL", stats=stats)).num_rows == 1  # no redeploy, no wait
            assert (stats.requests, stats.retries) == (2, 1)
            assert [r.authorization for r in server.requests[-2:]] == [f"Token {OLD}", f"Token {NEW}"]

            accepted[0] = "tok-SOMETHING-ELSE-1"  # the secret itself is wrong: one re-read, then fail
            stats = RequestStats()
            with pytest.raises(AuthenticationError):
                tiingo.get_latest("AAPL", stats=stats)
            assert (stats.requests, stats.retries) == (1, 0)


def test_an_unreadable_secret_mid_run_keeps_the_cached_token(secret, capsys):
    client, arn = secret
    clock = Clock()
    tokens = token_source_from_env(
        {"TIINGO_SECRET_ARN": arn}, max_age_minutes=1, secrets_client=client, clock=clock
    )
    client.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    client.create_secret(Name=f"{arn.split(':')[-1]}-gone", SecretString="x" * 12)  # keep the fixture happy
    clock.now = 61
    assert tokens.current() == OLD
    out = capsys.readouterr().out
    assert "keeping the cached Tiingo token" in out
    assert OLD not in out


def test_the_maximum_age_comes_from_the_environment(secret):
    client, arn = secret
    with client_from_env({"TIINGO_SECRET_ARN": arn}, secrets_client=client) as tiingo:
        assert tiingo._tokens.max_age == 15 * 60  # the default
    env = {"TIINGO_SECRET_ARN": arn, "TIINGO_TOKEN_MAX_AGE_MINUTES": "5"}
    with client_from_env(env, secrets_client=client) as tiingo:
        assert tiingo._tokens.max_age == 5 * 60
    with pytest.raises(ValueError, match="TIINGO_TOKEN_MAX_AGE_MINUTES must be >= 1"):
        client_from_env({**env, "TIINGO_TOKEN_MAX_AGE_MINUTES": "0"}, secrets_client=client)
    with pytest.raises(ValueError, match=r"cannot read the Tiingo token from secret .*ResourceNotFound"):
        client_from_env({"TIINGO_SECRET_ARN": arn + "-missing"}, secrets_client=client)
