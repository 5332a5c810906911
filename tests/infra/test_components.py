"""Each component on its own, under Pulumi mocks: what it registers and with which inputs."""

from __future__ import annotations

import json
import re
from typing import Any

import pulumi
import pytest

from components.catalog import GlueTableRef
from components.config import validate_config
from components.data_bucket import DataBucket
from components.orchestrator import BackfillOrchestrator, BackfillOrchestratorArgs
from components.pipeline_function import SharedInfra
from components.scraper import PriceScraper, PriceScraperArgs
from components.secrets import TiingoSecret
from stockpipe import layout
from tests.conftest import TEST_TOKEN
from tests.infra.conftest import (
    ACCOUNT,
    ROOT,
    ProgramRun,
    Recorded,
    assert_no_wildcards,
    grants,
    run_with_mocks,
    unwrap,
)

BUCKET = "stock-data-test"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
SECRET_ARN = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:stock-pipeline/dev/tiingo-api-token-AbCdEf"
TOPIC_ARN = f"arn:aws:sns:us-east-1:{ACCOUNT}:stock-pipeline-alarms-dev"
SCRAPER = "stock-pipeline:lambdas:PriceScraper"
ORCHESTRATOR = "stock-pipeline:lambdas:BackfillOrchestrator"
GLUE = "arn:aws:glue:us-east-1:123456789012"
CATALOG = GlueTableRef(
    database_name="stock_pipeline_dev",
    table_name="prices_daily",
    catalog_arn=f"{GLUE}:catalog",
    database_arn=f"{GLUE}:database/stock_pipeline_dev",
    table_arn=f"{GLUE}:table/stock_pipeline_dev/prices_daily",
)
DIGEST = re.compile(r"[0-9]{12}\.dkr\.ecr\.us-east-1\.amazonaws\.com/[a-z0-9-]+@sha256:[0-9a-f]{64}")


def settings(**overrides: Any):
    return validate_config({"tickers": ["AAPL", "MSFT"], "tiingoApiToken": "<set>", **overrides})


def shared(stack_settings) -> SharedInfra:
    return SharedInfra(
        settings=stack_settings,
        bucket_name=pulumi.Output.from_input(BUCKET),
        bucket_arn=pulumi.Output.from_input(BUCKET_ARN),
        secret_arn=pulumi.Output.from_input(SECRET_ARN),
        alarm_topic_arn=pulumi.Output.from_input(TOPIC_ARN),
        account_id=pulumi.Output.from_input(ACCOUNT),
    )


def run_lambdas(**overrides: Any) -> ProgramRun:
    stack_settings = settings(**overrides)

    def body() -> None:
        infra = shared(stack_settings)
        scraper = PriceScraper("tiingo-price-scraper", PriceScraperArgs(shared=infra, catalog=CATALOG))
        BackfillOrchestrator(
            "tiingo-backfill-orchestrator",
            BackfillOrchestratorArgs(
                shared=infra,
                scraper_function_name=scraper.function_name,
                scraper_function_arn=scraper.function_arn,
            ),
        )

    return run_with_mocks(body, config={})


@pytest.fixture(scope="module")
def lambdas() -> ProgramRun:
    return run_lambdas()


def child(run: ProgramRun, parent_type: str, typ: str, suffix: str = "") -> Recorded:
    found = [r for r in run.of_type(typ) if r.parent_type == parent_type and r.name.endswith(suffix)]
    assert len(found) == 1, f"{typ} under {parent_type}: {len(found)}"
    return found[0]


def test_children_are_parented_to_their_component(lambdas):
    components = {r.typ: r for r in lambdas.resources if r.typ in (SCRAPER, ORCHESTRATOR)}
    assert set(components) == {SCRAPER, ORCHESTRATOR}
    children = [r for r in lambdas.resources if r.typ not in (SCRAPER, ORCHESTRATOR)]
    assert children
    for record in children:
        assert record.parent_type in (SCRAPER, ORCHESTRATOR), record.name
        prefix = "tiingo-price-scraper-" if record.parent_type == SCRAPER else "tiingo-backfill-orchestrator-"
        assert record.name.startswith(prefix), record.name
    per_component = {
        t: sorted(r.typ for r in children if r.parent_type == t) for t in (SCRAPER, ORCHESTRATOR)
    }
    scraper_types = list(per_component[SCRAPER])
    scraper_types.remove("aws:cloudwatch/metricAlarm:MetricAlarm")  # the freshness alarm is scraper-only
    assert scraper_types == per_component[ORCHESTRATOR]


@pytest.mark.parametrize(
    ("component", "folder"),
    [(SCRAPER, "tiingo_price_scraper"), (ORCHESTRATOR, "tiingo_backfill_orchestrator")],
)
def test_image_is_amd64_from_its_own_dockerfile_and_pushed_to_its_own_repo(lambdas, component, folder):
    repo = child(lambdas, component, "aws:ecr/repository:Repository")
    image = child(lambdas, component, "docker:index/image:Image")
    build = image.plain["build"]
    assert build == {
        "context": "lambdas",
        "dockerfile": f"lambdas/{folder}/Dockerfile",
        "platform": "linux/amd64",
    }
    assert (ROOT / build["dockerfile"]).is_file()
    assert image.plain["imageName"].startswith(repo.outputs["repositoryUrl"] + ":src-")
    assert image.plain["buildOnPreview"] is False
    registry = image.inputs["registry"]
    assert pulumi.runtime.rpc.is_rpc_secret(registry)  # the ECR password stays a secret
    assert unwrap(registry)["server"] == repo.outputs["repositoryUrl"].split("/")[0]
    assert unwrap(registry)["username"] == "AWS"


def test_each_function_has_its_own_repository(lambdas):
    repos = lambdas.of_type("aws:ecr/repository:Repository")
    assert sorted(r.plain["name"] for r in repos) == [
        "tiingo-backfill-orchestrator-dev",
        "tiingo-price-scraper-dev",
    ]
    for repo in repos:
        assert repo.plain["imageScanningConfiguration"] == {"scanOnPush": True}
        assert repo.plain["imageTagMutability"] == "IMMUTABLE"
    images = {r.parent_type: r.plain["imageName"] for r in lambdas.of_type("docker:index/image:Image")}
    assert images[SCRAPER].split(":")[0] != images[ORCHESTRATOR].split(":")[0]


def test_lifecycle_keeps_the_newest_images(lambdas):
    for component in (SCRAPER, ORCHESTRATOR):
        lifecycle = child(lambdas, component, "aws:ecr/lifecyclePolicy:LifecyclePolicy")
        rules = json.loads(lifecycle.plain["policy"])["rules"]
        keep = [r for r in rules if r["selection"]["countType"] == "imageCountMoreThan"]
        assert keep[0]["selection"] == {
            "tagStatus": "any",
            "countType": "imageCountMoreThan",
            "countNumber": 10,
        }
        assert keep[0]["rulePriority"] == max(r["rulePriority"] for r in rules)  # "any" must come last
        assert (
            lifecycle.plain["repository"]
            == child(lambdas, component, "aws:ecr/repository:Repository").plain["name"]
        )


@pytest.mark.parametrize("component", [SCRAPER, ORCHESTRATOR])
def test_function_is_pinned_to_the_image_digest(lambdas, component):
    image = child(lambdas, component, "docker:index/image:Image")
    function = child(lambdas, component, "aws:lambda/function:Function").plain
    assert function["imageUri"] == image.outputs["repoDigest"]
    assert DIGEST.fullmatch(function["imageUri"])
    assert function["packageType"] == "Image"
    assert function["architectures"] == ["x86_64"]
    base = "tiingo-price-scraper" if component == SCRAPER else "tiingo-backfill-orchestrator"
    role = lambdas.one("aws:iam/role:Role", f"{base}-role")
    assert function["role"] == role.outputs["arn"]


def test_scraper_function_settings_and_environment(lambdas):
    function = child(lambdas, SCRAPER, "aws:lambda/function:Function").plain
    assert function["name"] == "tiingo-price-scraper-dev"
    assert function["memorySize"] == 1024
    assert function["timeout"] == 900
    assert function["reservedConcurrentExecutions"] == -1
    assert function["environment"]["variables"] == {
        "DATA_BUCKET": BUCKET,
        "TIINGO_SECRET_ARN": SECRET_ARN,
        "SCRAPER_CONCURRENCY": "8",
        "TIINGO_REQUESTS_PER_HOUR": "50",
        "TIINGO_TOKEN_MAX_AGE_MINUTES": "15",
        "LOOKBACK_DAYS": "7",
        "LOG_LEVEL": "INFO",
        "GLUE_DATABASE": "stock_pipeline_dev",
        "GLUE_TABLE": "prices_daily",
    }
    assert function["loggingConfig"]["logGroup"] == "/aws/lambda/tiingo-price-scraper-dev"


def test_orchestrator_function_settings_and_environment(lambdas):
    function = child(lambdas, ORCHESTRATOR, "aws:lambda/function:Function").plain
    assert function["name"] == "tiingo-backfill-orchestrator-dev"
    assert (function["memorySize"], function["timeout"]) == (512, 900)
    assert function["reservedConcurrentExecutions"] == -1
    assert function["environment"]["variables"] == {
        "DATA_BUCKET": BUCKET,
        "TIINGO_SECRET_ARN": SECRET_ARN,
        "SCRAPER_FUNCTION_NAME": "tiingo-price-scraper-dev",
        "BACKFILL_START_DATE": "2000-01-01",
        "BACKFILL_CHUNK_MONTHS": "6",
        "BACKFILL_REQUEST_BUDGET": "40",
        "BACKFILL_CONCURRENCY": "2",
        "BACKFILL_MAX_ATTEMPTS": "5",
        "TIINGO_REQUESTS_PER_HOUR": "50",
        "TIINGO_TOKEN_MAX_AGE_MINUTES": "15",
        "LOG_LEVEL": "INFO",
    }


def test_base_url_and_sizes_follow_config():
    run = run_lambdas(
        tiingoBaseUrl="http://127.0.0.1:8999/",
        scraperReservedConcurrency=-1,
        scraperMemoryMb=2048,
        orchestratorTimeoutSeconds=120,
        buildOnPreview=True,
        imageKeepCount=3,
    )
    scraper = child(run, SCRAPER, "aws:lambda/function:Function").plain
    orchestrator = child(run, ORCHESTRATOR, "aws:lambda/function:Function").plain
    assert scraper["environment"]["variables"]["TIINGO_BASE_URL"] == "http://127.0.0.1:8999"
    assert orchestrator["environment"]["variables"]["TIINGO_BASE_URL"] == "http://127.0.0.1:8999"
    assert scraper["reservedConcurrentExecutions"] == -1
    assert scraper["memorySize"] == 2048
    assert orchestrator["timeout"] == 120
    assert scraper["timeout"] == 900
    assert all(r.plain["buildOnPreview"] is True for r in run.of_type("docker:index/image:Image"))
    lifecycle = json.loads(child(run, SCRAPER, "aws:ecr/lifecyclePolicy:LifecyclePolicy").plain["policy"])
    assert lifecycle["rules"][-1]["selection"]["countNumber"] == 3


def test_scraper_role_names_exact_arns_and_no_wildcards(lambdas):
    policy = child(lambdas, SCRAPER, "aws:iam/rolePolicy:RolePolicy", suffix="-role-policy")
    assert_no_wildcards(policy)
    log_group = child(lambdas, SCRAPER, "aws:cloudwatch/logGroup:LogGroup").outputs["arn"]
    dlq = child(lambdas, SCRAPER, "aws:sqs/queue:Queue").outputs["arn"]
    assert grants(policy) == {
        "s3:GetObject": {
            f"{BUCKET_ARN}/prices/daily/*",
            f"{BUCKET_ARN}/prices/fetch-times/*",
            f"{BUCKET_ARN}/config/universe.json",
        },
        "s3:PutObject": {f"{BUCKET_ARN}/prices/daily/*", f"{BUCKET_ARN}/prices/fetch-times/*"},
        "s3:ListBucket": {BUCKET_ARN},
        "secretsmanager:GetSecretValue": {SECRET_ARN},
        "logs:CreateLogStream": {f"{log_group}:log-stream:*"},
        "logs:PutLogEvents": {f"{log_group}:log-stream:*"},
        "sqs:SendMessage": {dlq},
        "glue:GetTable": {CATALOG.catalog_arn, CATALOG.database_arn, CATALOG.table_arn},
        "glue:CreatePartition": {CATALOG.catalog_arn, CATALOG.database_arn, CATALOG.table_arn},
    }
    role = lambdas.one("aws:iam/role:Role", "tiingo-price-scraper-role").plain
    trust = json.loads(role["assumeRolePolicy"])["Statement"]
    assert trust == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
        }
    ]


def test_orchestrator_role_may_invoke_only_the_scraper(lambdas):
    policy = child(lambdas, ORCHESTRATOR, "aws:iam/rolePolicy:RolePolicy", suffix="-role-policy")
    assert_no_wildcards(policy)
    scraper_arn = child(lambdas, SCRAPER, "aws:lambda/function:Function").outputs["arn"]
    granted = grants(policy)
    assert granted["lambda:InvokeFunction"] == {scraper_arn}
    progress = {
        f"{BUCKET_ARN}/backfill/index.json",
        f"{BUCKET_ARN}/backfill/shards/*",
        f"{BUCKET_ARN}/backfill/tickers/*",
        f"{BUCKET_ARN}/backfill/progress.json",  # read once, to migrate it
    }
    assert granted["s3:GetObject"] == {*progress, f"{BUCKET_ARN}/config/universe.json"}
    assert granted["s3:PutObject"] == progress
    assert granted["secretsmanager:GetSecretValue"] == {SECRET_ARN}
    assert not any(
        action.startswith("s3:") and f"{BUCKET_ARN}/prices" in str(r) for action, r in granted.items()
    )


@pytest.mark.parametrize("component", [SCRAPER, ORCHESTRATOR])
def test_scheduler_role_can_invoke_only_its_target(lambdas, component):
    function = child(lambdas, component, "aws:lambda/function:Function")
    dlq = child(lambdas, component, "aws:sqs/queue:Queue")
    scheduler_role = child(lambdas, component, "aws:iam/role:Role", suffix="-scheduler-role")
    scheduler_policy = child(lambdas, component, "aws:iam/rolePolicy:RolePolicy", suffix="-scheduler-policy")
    assert_no_wildcards(scheduler_policy)
    assert grants(scheduler_policy) == {
        "lambda:InvokeFunction": {function.outputs["arn"]},
        "sqs:SendMessage": {dlq.outputs["arn"]},
    }
    trust = json.loads(scheduler_role.plain["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    group = child(lambdas, component, "aws:scheduler/scheduleGroup:ScheduleGroup")
    assert trust["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnEquals": {"aws:SourceArn": group.outputs["arn"]},
    }

    schedule = child(lambdas, component, "aws:scheduler/schedule:Schedule").plain
    assert schedule["groupName"] == group.outputs["name"]
    target = schedule["target"]
    assert target["arn"] == function.outputs["arn"]
    assert target["roleArn"] == scheduler_role.outputs["arn"]
    assert target["input"] == "{}"
    assert target["deadLetterConfig"] == {"arn": dlq.outputs["arn"]}
    assert target["retryPolicy"]["maximumRetryAttempts"] >= 1
    assert schedule["scheduleExpressionTimezone"] == "America/New_York"
    assert schedule["flexibleTimeWindow"] == {"mode": "OFF"}
    expected = "cron(30 20 ? * MON-FRI *)" if component == SCRAPER else "rate(1 hour)"
    assert schedule["scheduleExpression"] == expected


@pytest.mark.parametrize(("component", "retries"), [(SCRAPER, 1), (ORCHESTRATOR, 0)])
def test_async_failures_go_to_the_dead_letter_queue(lambdas, component, retries):
    config = child(lambdas, component, "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig").plain
    dlq = child(lambdas, component, "aws:sqs/queue:Queue")
    assert config["destinationConfig"] == {"onFailure": {"destination": dlq.outputs["arn"]}}
    assert config["maximumRetryAttempts"] == retries
    assert config["functionName"] == child(lambdas, component, "aws:lambda/function:Function").plain["name"]
    assert dlq.plain["sqsManagedSseEnabled"] is True


def test_log_groups_have_retention(lambdas):
    groups = {
        r.plain["name"]: r.plain["retentionInDays"]
        for r in lambdas.of_type("aws:cloudwatch/logGroup:LogGroup")
    }
    assert groups == {
        "/aws/lambda/tiingo-price-scraper-dev": 30,
        "/aws/lambda/tiingo-backfill-orchestrator-dev": 30,
    }


def test_alarms(lambdas):
    alarms = {r.name: r.plain for r in lambdas.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert set(alarms) == {
        "tiingo-price-scraper-errors-alarm",
        "tiingo-price-scraper-dlq-alarm",
        "tiingo-price-scraper-freshness-alarm",
        "tiingo-backfill-orchestrator-errors-alarm",
        "tiingo-backfill-orchestrator-dlq-alarm",
    }
    for alarm in alarms.values():
        assert alarm["alarmActions"] == [TOPIC_ARN]
    errors = alarms["tiingo-price-scraper-errors-alarm"]
    assert (errors["namespace"], errors["metricName"]) == ("AWS/Lambda", "Errors")
    assert errors["dimensions"] == {"FunctionName": "tiingo-price-scraper-dev"}
    depth = alarms["tiingo-backfill-orchestrator-dlq-alarm"]
    assert depth["dimensions"] == {"QueueName": "tiingo-backfill-orchestrator-dlq-dev"}
    fresh = alarms["tiingo-price-scraper-freshness-alarm"]
    assert fresh["name"] == "tiingo-price-scraper-trading-days-behind-dev"
    queries = {q["id"]: q for q in fresh["metricQueries"]}
    metric = queries["behind"]["metric"]
    assert (metric["namespace"], metric["metricName"], metric["stat"]) == (
        layout.METRIC_NAMESPACE,
        layout.ScraperMetric.TRADING_DAYS_BEHIND,
        "Maximum",
    )
    assert metric["dimensions"] == {layout.FUNCTION_DIMENSION: "tiingo-price-scraper-dev"}
    assert metric["period"] == 86400
    assert queries["filled"]["expression"] == "FILL(behind, 99)"
    assert [q["id"] for q in fresh["metricQueries"] if q["returnData"]] == ["due"]
    # default schedule: windows starting Tue-Fri UTC are judged, except around the 00:30/01:30 UTC run
    assert queries["due"]["expression"] == (
        "IF((DAY(filled) == 2 OR DAY(filled) == 3 OR DAY(filled) == 4 OR DAY(filled) == 5)"
        " AND (HOUR(filled) != 0 AND HOUR(filled) != 1 AND HOUR(filled) != 2), filled, 0)"
    )
    assert fresh["comparisonOperator"] == "GreaterThanThreshold"
    assert fresh["threshold"] == 1
    assert fresh["treatMissingData"] == "breaching"
    assert fresh["okActions"] == [TOPIC_ARN]


# --- data bucket, secret, catalog ---------------------------------------------------------------------


def run_bucket(existing: str | None = None) -> ProgramRun:
    return run_with_mocks(
        lambda: DataBucket("data", tickers=["AAPL", "BRK-B"], existing_bucket=existing), config={}
    )


def test_bucket_is_private_tls_only_versioned_and_encrypted():
    run = run_bucket()
    (bucket,) = run.of_type("aws:s3/bucket:Bucket")
    name, arn = bucket.outputs["bucket"], bucket.outputs["arn"]
    assert bucket.plain["bucketPrefix"] == "stock-pipeline-data-dev-"
    pab = run.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "data-public-access").plain
    assert pab == {
        "bucket": name,
        "blockPublicAcls": True,
        "blockPublicPolicy": True,
        "ignorePublicAcls": True,
        "restrictPublicBuckets": True,
    }
    policy = json.loads(run.one("aws:s3/bucketPolicy:BucketPolicy", "data-tls-only").plain["policy"])
    assert policy["Statement"] == [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [arn, f"{arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]
    versioning = run.one("aws:s3/bucketVersioning:BucketVersioning", "data-versioning").plain
    assert versioning["versioningConfiguration"] == {"status": "Enabled"}
    sse = run.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "data-encryption",
    ).plain
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    lifecycle = run.one(
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "data-lifecycle"
    ).plain
    assert lifecycle["rules"][0]["noncurrentVersionExpiration"] == {"noncurrentDays": 30}
    universe = run.one("aws:s3/bucketObjectv2:BucketObjectv2", "data-universe").plain
    assert universe["key"] == "config/universe.json"
    assert json.loads(universe["content"]) == ["AAPL", "BRK-B"]
    assert universe["contentType"] == "application/json"
    assert universe["bucket"] == name


def test_existing_bucket_is_adopted_not_created():
    run = run_bucket(existing="my-existing-bucket")
    assert run.of_type("aws:s3/bucket:Bucket") == []
    assert ("aws:s3/getBucket:getBucket", {"bucket": "my-existing-bucket"}) in [
        (token, {"bucket": args.get("bucket")}) for token, args in run.mocks.calls
    ]
    pab = run.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "data-public-access").plain
    assert pab["bucket"] == "my-existing-bucket"
    policy = json.loads(run.one("aws:s3/bucketPolicy:BucketPolicy", "data-tls-only").plain["policy"])
    assert policy["Statement"][0]["Resource"] == [
        "arn:aws:s3:::my-existing-bucket",
        "arn:aws:s3:::my-existing-bucket/*",
    ]


def test_secret_holds_the_token_as_a_secret_and_nothing_else_does():
    def body() -> None:
        TiingoSecret("tiingo-token", token=pulumi.Output.secret(TEST_TOKEN))

    run = run_with_mocks(body, config={})
    version = run.one("aws:secretsmanager/secretVersion:SecretVersion", "tiingo-token-version")
    assert pulumi.runtime.rpc.is_rpc_secret(version.inputs["secretString"])
    assert unwrap(version.inputs["secretString"]) == TEST_TOKEN
    secret = run.one("aws:secretsmanager/secret:Secret", "tiingo-token-secret")
    assert TEST_TOKEN not in json.dumps(secret.plain)
    assert version.plain["secretId"] == secret.outputs["arn"]


def test_secret_stays_secret_even_from_a_plain_output():
    run = run_with_mocks(lambda: TiingoSecret("t", token=pulumi.Output.from_input(TEST_TOKEN)), config={})
    version = run.one("aws:secretsmanager/secretVersion:SecretVersion", "t-version")
    assert pulumi.runtime.rpc.is_rpc_secret(version.inputs["secretString"])
