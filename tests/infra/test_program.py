"""The whole program (__main__.py) under mocks, for every Pulumi.<stack>.yaml in the repo."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from components.config import SECRET_COMMAND, ConfigError
from stockpipe.tickers import normalize_tickers
from tests.conftest import TEST_TOKEN
from tests.infra.conftest import (
    PROJECT,
    ProgramRun,
    RecordingMocks,
    assert_no_wildcards,
    run_program,
    stack_config,
    stack_files,
    stack_name,
    unwrap,
)

COMPONENT_TYPES = {
    "stock-pipeline:storage:DataBucket",
    "stock-pipeline:secrets:TiingoSecret",
    "stock-pipeline:monitoring:AlarmTopic",
    "stock-pipeline:lambdas:PriceScraper",
    "stock-pipeline:lambdas:BackfillOrchestrator",
    "stock-pipeline:analytics:PriceCatalog",
    "stock-pipeline:analytics:AthenaWorkgroup",
    "stock-pipeline:monitoring:PipelineDashboard",
}
SCRAPER_ENV = {
    "DATA_BUCKET",
    "TIINGO_SECRET_ARN",
    "SCRAPER_CONCURRENCY",
    "TIINGO_REQUESTS_PER_HOUR",
    "TIINGO_TOKEN_MAX_AGE_MINUTES",
    "LOOKBACK_DAYS",
    "LOG_LEVEL",
    "GLUE_DATABASE",
    "GLUE_TABLE",
}
ORCHESTRATOR_ENV = {
    "DATA_BUCKET",
    "TIINGO_SECRET_ARN",
    "SCRAPER_FUNCTION_NAME",
    "BACKFILL_START_DATE",
    "BACKFILL_CHUNK_MONTHS",
    "BACKFILL_REQUEST_BUDGET",
    "BACKFILL_CONCURRENCY",
    "BACKFILL_MAX_ATTEMPTS",
    "TIINGO_REQUESTS_PER_HOUR",
    "TIINGO_TOKEN_MAX_AGE_MINUTES",
    "LOG_LEVEL",
}
EXPECTED_COUNTS = {
    "aws:lambda/function:Function": 2,
    "aws:ecr/repository:Repository": 2,
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": 2,
    "docker:index/image:Image": 2,
    "aws:scheduler/schedule:Schedule": 2,
    "aws:sqs/queue:Queue": 2,
    "aws:iam/role:Role": 4,
    "aws:iam/rolePolicy:RolePolicy": 4,
    "aws:cloudwatch/logGroup:LogGroup": 2,
    "aws:cloudwatch/metricAlarm:MetricAlarm": 5,
    "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig": 2,
    "aws:secretsmanager/secret:Secret": 1,
    "aws:secretsmanager/secretVersion:SecretVersion": 1,
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": 2,
    "aws:s3/bucketPolicy:BucketPolicy": 2,
    "aws:s3/bucketVersioning:BucketVersioning": 1,
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": 2,
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": 2,
    "aws:s3/bucketObjectv2:BucketObjectv2": 1,
    "aws:sns/topic:Topic": 1,
    "aws:glue/catalogDatabase:CatalogDatabase": 1,
    "aws:glue/catalogTable:CatalogTable": 1,
    "aws:glue/partitionIndex:PartitionIndex": 2,
    "aws:athena/workgroup:Workgroup": 1,
    "aws:athena/namedQuery:NamedQuery": 6,
    "aws:cloudwatch/dashboard:Dashboard": 1,
}
STACKS = stack_files()


def test_the_repo_has_a_dev_stack():
    assert Path("Pulumi.dev.yaml").name in [p.name for p in STACKS]


@pytest.fixture(scope="module", params=STACKS, ids=[stack_name(p) for p in STACKS])
def stack_run(request) -> tuple[dict, ProgramRun]:
    config = stack_config(request.param)
    return config, run_program(config, stack=stack_name(request.param))


def test_resource_graph_types_counts_and_parents(stack_run):
    config, run = stack_run
    counts = Counter(r.typ for r in run.resources)
    has_bucket_name = bool(config.get(f"{PROJECT}:bucketName"))
    assert counts["aws:s3/bucket:Bucket"] == (1 if has_bucket_name else 2)  # + the Athena results bucket
    assert counts["aws:sns/topicSubscription:TopicSubscription"] == (
        1 if config.get(f"{PROJECT}:alarmEmail") else 0
    )
    for typ, expected in EXPECTED_COUNTS.items():
        assert counts[typ] == expected, typ
    components = [r for r in run.resources if r.typ.startswith("stock-pipeline:")]
    assert {r.typ for r in components} == COMPONENT_TYPES
    assert len(components) == len(COMPONENT_TYPES)
    for record in components:
        assert record.parent_type == "pulumi:pulumi:Stack"
    for record in run.resources:
        if not record.typ.startswith("stock-pipeline:"):
            assert record.parent_type in COMPONENT_TYPES, f"{record.name} is not inside a component"


def test_functions_run_their_own_digest_pinned_image(stack_run):
    _, run = stack_run
    for function in run.of_type("aws:lambda/function:Function"):
        (image,) = [
            i for i in run.of_type("docker:index/image:Image") if i.parent_type == function.parent_type
        ]
        assert function.plain["imageUri"] == image.outputs["repoDigest"]
        assert re.fullmatch(r"\S+/[a-z0-9-]+@sha256:[0-9a-f]{64}", function.plain["imageUri"])
        assert image.plain["build"]["platform"] == "linux/amd64"
        assert function.plain["architectures"] == ["x86_64"]


def test_environment_matches_the_handler_contracts(stack_run):
    config, run = stack_run
    functions = {
        f.parent_type: f.plain["environment"]["variables"]
        for f in run.of_type("aws:lambda/function:Function")
    }
    extra = {"TIINGO_BASE_URL"} if config.get(f"{PROJECT}:tiingoBaseUrl") else set()
    assert set(functions["stock-pipeline:lambdas:PriceScraper"]) == SCRAPER_ENV | extra
    assert set(functions["stock-pipeline:lambdas:BackfillOrchestrator"]) == ORCHESTRATOR_ENV | extra
    (secret,) = run.of_type("aws:secretsmanager/secret:Secret")
    bucket_pab = run.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "data-public-access")
    for env in functions.values():
        assert env["TIINGO_SECRET_ARN"] == secret.outputs["arn"]
        assert env["DATA_BUCKET"] == bucket_pab.plain["bucket"]
        assert all(isinstance(value, str) for value in env.values())


def test_iam_has_no_wildcards(stack_run):
    _, run = stack_run
    for policy in run.of_type("aws:iam/rolePolicy:RolePolicy"):
        assert_no_wildcards(policy)


def test_universe_is_the_normalised_stack_tickers(stack_run):
    config, run = stack_run
    (universe,) = run.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
    assert json.loads(universe.plain["content"]) == normalize_tickers(config[f"{PROJECT}:tickers"])


def test_token_appears_only_in_the_secret_version(stack_run):
    _, run = stack_run
    for record in run.resources:
        if record.typ == "aws:secretsmanager/secretVersion:SecretVersion":
            assert unwrap(record.inputs["secretString"]) == TEST_TOKEN
            assert json.dumps(record.inputs["secretString"]).count("1b47061264138c4ac30d75fd1eb44270") == 1
            rest = {k: v for k, v in record.plain.items() if k != "secretString"}
            assert TEST_TOKEN not in json.dumps(rest)
        else:
            assert TEST_TOKEN not in json.dumps(record.plain, default=str), record.name
    assert TEST_TOKEN not in json.dumps(run.outputs, default=str)


PER_FUNCTION_OUTPUTS = {
    "FunctionName",
    "FunctionArn",
    "ImageDigest",
    "ScheduleName",
    "RepositoryUrl",
    "LogGroupName",
    "DeadLetterQueueUrl",
}
STACK_OUTPUTS = {
    "bucketName",
    "tiingoSecretArn",
    "alarmTopicArn",
    *(f"{fn}{output}" for fn in ("scraper", "orchestrator") for output in PER_FUNCTION_OUTPUTS),
    "glueDatabase",
    "glueTable",
    "athenaWorkgroup",
    "athenaResultsBucket",
    "athenaNamedQueries",
    "dashboardName",
    "dashboardUrl",
}


def test_stack_outputs(stack_run):
    _, run = stack_run
    assert set(run.outputs) == STACK_OUTPUTS
    assert "@sha256:" in run.outputs["scraperImageDigest"]
    assert run.outputs["glueTable"].endswith(".prices_daily")


def test_stack_outputs_are_what_an_operator_reaches_for(stack_run):
    _, run = stack_run
    out = run.outputs
    for prefix, base in (
        ("scraper", "tiingo-price-scraper"),
        ("orchestrator", "tiingo-backfill-orchestrator"),
    ):
        queue = run.one("aws:sqs/queue:Queue", f"{base}-dlq").outputs["url"]
        logs = run.one("aws:cloudwatch/logGroup:LogGroup", f"{base}-logs").outputs["name"]
        repo = run.one("aws:ecr/repository:Repository", f"{base}-repo").outputs["repositoryUrl"]
        assert out[f"{prefix}DeadLetterQueueUrl"] == queue
        assert out[f"{prefix}LogGroupName"] == logs == f"/aws/lambda/{out[f'{prefix}FunctionName']}"
        assert out[f"{prefix}RepositoryUrl"] == repo
        assert out[f"{prefix}ImageDigest"].startswith(repo + "@sha256:")
    assert (
        out["athenaWorkgroup"] == run.one("aws:athena/workgroup:Workgroup", "athena-workgroup").plain["name"]
    )
    assert out["athenaResultsBucket"] == run.one("aws:s3/bucket:Bucket", "athena-results").outputs["bucket"]
    queries = {
        q.name.removeprefix("athena-query-"): q for q in run.of_type("aws:athena/namedQuery:NamedQuery")
    }
    assert out["athenaNamedQueries"] == {slug: q.outputs["id"] for slug, q in queries.items()}
    (dashboard,) = run.of_type("aws:cloudwatch/dashboard:Dashboard")
    assert out["dashboardName"] == dashboard.plain["dashboardName"]
    assert out["dashboardUrl"].endswith(f"#dashboards/dashboard/{out['dashboardName']}")
    assert out["dashboardUrl"].startswith("https://us-east-1.console.aws.amazon.com/cloudwatch/")


def test_names_are_stack_qualified():
    config = stack_config(STACKS[0])
    run = run_program(config, stack="Feature_X")
    names = [r.plain["name"] for r in run.of_type("aws:lambda/function:Function")]
    assert sorted(names) == ["tiingo-backfill-orchestrator-feature-x", "tiingo-price-scraper-feature-x"]
    for typ in (
        "aws:scheduler/schedule:Schedule",
        "aws:sqs/queue:Queue",
        "aws:iam/role:Role",
        "aws:ecr/repository:Repository",
    ):
        for record in run.of_type(typ):
            assert record.plain["name"].endswith("-feature-x"), record.plain["name"]
            assert re.fullmatch(r"[a-z0-9-]+", record.plain["name"])


def test_preview_runs_without_docker_by_default():
    run = run_program(stack_config(STACKS[0]), preview=True)
    assert all(r.plain["buildOnPreview"] is False for r in run.of_type("docker:index/image:Image"))
    assert len(run.of_type("aws:lambda/function:Function")) == 2


def test_optional_settings_change_the_graph():
    config = {
        **stack_config(STACKS[0]),
        f"{PROJECT}:bucketName": "my-existing-bucket",
        f"{PROJECT}:alarmEmail": "ops@example.com",
    }
    run = run_program(config)
    assert [r.name for r in run.of_type("aws:s3/bucket:Bucket")] == ["athena-results"]
    (subscription,) = run.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert subscription.plain["endpoint"] == "ops@example.com"
    assert subscription.plain["protocol"] == "email"
    assert run.outputs["bucketName"] == "my-existing-bucket"


# --- config errors through the real program: raised before any resource exists ----------------------


def failing_run(config: dict, **kw) -> tuple[str, RecordingMocks]:
    """The ConfigError's message; asserts that nothing was registered before it."""
    mocks = RecordingMocks()
    with pytest.raises(ConfigError) as caught:
        run_program(config, mocks=mocks, **kw)
    assert mocks.records == []
    return str(caught.value), mocks


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"tickers": []}, "tickers is empty"),
        ({"tickers": ["AAPL", "NOT A TICKER"]}, "invalid ticker 'NOT A TICKER'"),
        ({"scraperSchedule": "cron(30 20 * * MON-FRI *)"}, "scraperSchedule: "),
        ({"orchestratorSchedule": "rate(1 hours)"}, "orchestratorSchedule: "),
        ({"backfillChunkMonths": -1}, "backfillChunkMonths must be between 0 and 1200, got -1"),
    ],
)
def test_config_errors_reach_the_user(change, expected):
    config = {**stack_config(STACKS[0]), **{f"{PROJECT}:{k}": v for k, v in change.items()}}
    message, _ = failing_run(config)
    assert expected in message


def test_missing_secret_tells_the_exact_command():
    message, _ = failing_run(stack_config(STACKS[0]), token=None)
    assert SECRET_COMMAND in message
    assert "pulumi config set --secret tiingoApiToken <your-token>" in message


def test_plaintext_token_is_refused_through_the_program():
    config = {**stack_config(STACKS[0]), f"{PROJECT}:tiingoApiToken": TEST_TOKEN}
    message, _ = failing_run(config, token=None)
    assert "plaintext" in message
    assert TEST_TOKEN not in message
