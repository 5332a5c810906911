"""Each Lambda image as Lambda runs it: awslambdaric in the rebuilt task root, over a loopback Runtime API.

The environment is the one the Pulumi program gives the function (from the mocked `dev` stack), pointed at
a moto S3/Secrets Manager server and the Tiingo simulator. A real event must come back as the summary
JSON through ``/response``; a malformed one as ``errorType: ValueError`` through ``/error``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from components.catalog import table_input
from stockpipe import layout, partitions
from tests.conftest import TEST_TOKEN
from tests.infra.conftest import ProgramRun
from tests.lambda_runtime import (
    Recipe,
    RuntimeAPI,
    build_task_root,
    parse_dockerfile,
    runtime_command,
    runtime_python,
)

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = ROOT / "lambdas"
ANSWER_SECONDS = 120
LAMBDA_ENV = {  # what the Lambda service sets for every function (besides the function's own variables)
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "en_US.UTF-8",
    "TZ": ":UTC",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


@dataclass(frozen=True)
class Case:
    folder: str
    component: str  # the logical name prefix of the function in the program
    good: dict[str, Any]
    bad: Any


CASES = [
    Case(
        "tiingo_price_scraper",
        "tiingo-price-scraper",
        {"tickers": ["AAPL"], "start_date": "2024-06-03", "end_date": "2024-06-07"},
        {"tickers": "AAPL"},
    ),
    Case(
        "tiingo_backfill_orchestrator",
        "tiingo-backfill-orchestrator",
        {"action": "status"},
        {"action": "explode"},
    ),
]


def lock_version(name: str) -> str:
    match = re.search(rf"^{name}==(\S+)$", (ROOT / "requirements.lock").read_text(), re.MULTILINE)
    assert match, f"{name} is not pinned in requirements.lock"
    return match.group(1)


@pytest.fixture(scope="module")
def runtime_cache(request: pytest.FixtureRequest) -> Path:
    return request.config.cache.mkdir("lambda-runtime")


@dataclass
class Image:
    recipe: Recipe
    task_root: Path
    python: Path


def build_image(folder: str, tmp_path: Path, cache: Path) -> Image:
    recipe = parse_dockerfile(CONTEXT / folder / "Dockerfile")
    task_root = tmp_path / "var-task"
    build_task_root(recipe, CONTEXT, task_root)
    return Image(recipe, task_root, runtime_python(recipe, task_root, cache, lock_version("awslambdaric")))


@pytest.fixture
def secret_arn(moto_endpoint: str) -> str:
    client = boto3.client("secretsmanager", endpoint_url=moto_endpoint)
    name = f"stock-pipeline/test/tiingo-{len(client.list_secrets()['SecretList'])}"
    return client.create_secret(Name=name, SecretString=TEST_TOKEN)["ARN"]


def function_settings(run: ProgramRun, component: str) -> dict[str, Any]:
    return run.one("aws:lambda/function:Function", f"{component}-function").plain


def create_catalog(moto_endpoint: str, bucket: str, function: dict[str, Any]) -> None:
    """The Glue table the program deploys, under the names the function's environment gives it."""
    variables = function["environment"]["variables"]
    target = partitions.CatalogTarget.from_env(variables)
    if target is None:
        return
    glue = boto3.client("glue", endpoint_url=moto_endpoint)
    if target.database not in {d["Name"] for d in glue.get_databases()["DatabaseList"]}:
        glue.create_database(DatabaseInput={"Name": target.database})
    table = {**table_input(bucket), "Name": target.table}
    try:
        glue.create_table(DatabaseName=target.database, TableInput=table)
    except glue.exceptions.AlreadyExistsException:
        glue.update_table(DatabaseName=target.database, TableInput=table)


def lambda_environment(image: Image, function: dict[str, Any], api: RuntimeAPI, **overrides: str) -> dict:
    name = function["name"]
    return {
        **LAMBDA_ENV,
        "LAMBDA_TASK_ROOT": str(image.task_root),
        "LAMBDA_RUNTIME_DIR": str(image.python.parent.parent),
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function["memorySize"]),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2024/06/14/[$LATEST]0123456789abcdef",
        "_HANDLER": image.recipe.cmd[0],
        **image.recipe.env,
        **function["environment"]["variables"],
        **overrides,
    }


def run_invocations(
    image: Image, env: dict[str, str], api: RuntimeAPI, events: list[Any]
) -> tuple[dict, str]:
    """Start the runtime, queue the events, wait for every answer, then stop the runtime ourselves."""
    ids = [api.invoke(event) for event in events]
    process = subprocess.Popen(
        runtime_command(image.python, image.recipe),
        cwd=image.task_root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        answers = api.wait(ids, timeout=ANSWER_SECONDS)
    finally:
        process.kill()  # it would otherwise wait on /next forever (or crash once the API is gone)
        output, _ = process.communicate(timeout=30)
    logs = output.decode(errors="replace")
    assert api.init_error is None, f"init error {api.init_error}\n{logs}"
    assert set(ids) <= set(answers), f"no answer within {ANSWER_SECONDS}s:\n{logs}"
    return {event_id: answers[event_id] for event_id in ids}, logs


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.folder)
def test_a_real_event_answers_with_the_summary_and_a_malformed_one_with_value_error(
    case, tmp_path, runtime_cache, dev_run, moto_endpoint, s3_client, bucket, simulator, secret_arn
):
    image = build_image(case.folder, tmp_path, runtime_cache)
    function = function_settings(dev_run, case.component)
    create_catalog(moto_endpoint, bucket, function)
    with RuntimeAPI(function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{function['name']}") as api:
        env = lambda_environment(
            image,
            function,
            api,
            DATA_BUCKET=bucket,
            TIINGO_SECRET_ARN=secret_arn,
            TIINGO_BASE_URL=simulator.base_url,
            AWS_ENDPOINT_URL=moto_endpoint,
        )
        answers, logs = run_invocations(image, env, api, [case.good, case.bad])
    good, bad = answers.values()
    assert good.kind == "response", good
    assert bad.kind == "error", bad
    assert bad.body["errorType"] == "ValueError"
    assert bad.body["errorMessage"]
    assert TEST_TOKEN not in json.dumps([good.body, bad.body]) + logs
    if case.folder == "tiingo_price_scraper":
        assert good.body["succeeded"]["AAPL"]["rows"] == 5, good.body
        key = layout.price_key("AAPL", 2024)
        assert s3_client.head_object(Bucket=bucket, Key=key)["ContentLength"] > 0
        target = partitions.CatalogTarget.from_env(function["environment"]["variables"])
        assert target is not None  # the program always gives the scraper its Glue table
        glue = boto3.client("glue", endpoint_url=moto_endpoint)
        glue.get_partition(
            DatabaseName=target.database, TableName=target.table, PartitionValues=["AAPL", "2024"]
        )
    else:
        assert good.body["action"] == "status"


# What each image must hold, and must not: the orchestrator's image is lean (no pyarrow: it reads JSON only).
IMAGE_PACKAGES = {
    "tiingo_price_scraper": (
        {"awslambdaric", "pyarrow", "httpx", "boto3", "stockpipe", "lambda_function"},
        set(),
    ),
    "tiingo_backfill_orchestrator": (
        {"awslambdaric", "httpx", "boto3", "stockpipe", "backfill_orchestrator"},
        {"pyarrow"},
    ),
}
NEVER_IN_AN_IMAGE = {"numpy", "pandas", "moto", "pytest", "pulumi", "tests"}


@pytest.mark.slow
@pytest.mark.parametrize("folder", sorted(IMAGE_PACKAGES))
def test_the_runtime_sees_only_the_task_root_and_the_image_packages(folder, tmp_path, runtime_cache):
    image = build_image(folder, tmp_path, runtime_cache)
    present, absent = IMAGE_PACKAGES[folder]
    modules = sorted(present | absent | NEVER_IN_AN_IMAGE)
    probe = (
        "import importlib.util as u, json, sys;"
        "print(json.dumps({'path': sys.path, 'found': {m: u.find_spec(m) is not None for m in"
        f" {modules!r}}}}}))"
    )
    command = [*runtime_command(image.python, image.recipe)[:3], "-c", probe]
    result = subprocess.run(
        command,
        cwd=image.task_root,
        env=dict(LAMBDA_ENV),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    allowed = (str(image.task_root), str(image.python.parent.parent), sys.base_prefix)
    assert all(entry == "" or entry.startswith(allowed) for entry in seen["path"]), seen["path"]
    assert not any(entry.startswith(sys.base_prefix) and "site-packages" in entry for entry in seen["path"])
    found = seen["found"]
    assert all(found[m] for m in present), found
    assert not any(found[m] for m in absent | NEVER_IN_AN_IMAGE), found


@pytest.mark.slow
def test_a_cmd_that_does_not_resolve_is_an_init_error(tmp_path, runtime_cache):
    """The harness sees what Lambda would report if CMD named a module the image does not have."""
    image = build_image(CASES[0].folder, tmp_path, runtime_cache)
    image.recipe.cmd = ["lambda_functions.lambda_handler"]
    with RuntimeAPI(function_arn="arn:aws:lambda:us-east-1:123456789012:function:x") as api:
        env = {**LAMBDA_ENV, "AWS_LAMBDA_RUNTIME_API": api.address, **image.recipe.env}
        process = subprocess.Popen(
            runtime_command(image.python, image.recipe),
            cwd=image.task_root,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        try:
            api.wait(["never"], timeout=ANSWER_SECONDS)
        finally:
            process.kill()
            process.communicate(timeout=30)
    assert api.init_error is not None
    assert api.init_error.body["errorType"] == "Runtime.ImportModuleError"
