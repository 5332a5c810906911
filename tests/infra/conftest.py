"""Pulumi mocks for the infra tests: run the real program (or one component) with no CLI and no cloud.

The mocks echo inputs back as outputs and add the computed properties AWS/Docker would return, shaped
like the real thing (ARNs, ECR URLs, a ``repo@sha256:<64 hex>`` digest), so assertions can fail.
"""

from __future__ import annotations

import hashlib
import json
import runpy
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.settings import SETTINGS
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from tests.conftest import TEST_TOKEN

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "__main__.py"
PROJECT = "stock-pipeline"
ACCOUNT = "123456789012"
REGION = "us-east-1"
ECR_HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
ECR_PASSWORD = "ecr-password-not-a-tiingo-token"


def unwrap(value: Any) -> Any:
    """Inputs with the secret wrappers removed (for value assertions)."""
    if rpc.is_rpc_secret(value):
        return unwrap(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


@dataclass
class Recorded:
    """One registered resource: type token, logical name, raw inputs (secrets still wrapped), URN."""

    typ: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    urn: str = ""

    @property
    def plain(self) -> dict[str, Any]:
        return unwrap(self.inputs)

    @property
    def parent_type(self) -> str:
        chain = self.urn.split("::")[2].split("$")
        return chain[-2] if len(chain) > 1 else STACK_TYPE


def statements(record: Recorded) -> list[dict]:
    return json.loads(record.plain["policy"])["Statement"]


def grants(record: Recorded) -> dict[str, set[str]]:
    """action -> resources, over the Allow statements of a policy document."""
    out: dict[str, set[str]] = {}
    for statement in statements(record):
        assert statement["Effect"] == "Allow"
        for action in statement["Action"]:
            out.setdefault(action, set()).update(statement["Resource"])
    return out


def assert_no_wildcards(record: Recorded) -> None:
    for statement in statements(record):
        for action in statement["Action"]:
            assert "*" not in action, action
        for resource in statement["Resource"]:
            assert resource != "*"
            assert resource.startswith("arn:aws:"), resource
            # a wildcard only as the tail of a named prefix (keys under prices/daily/, streams of one group)
            assert "*" not in resource[:-1], resource
            assert not resource.endswith("*") or resource.endswith(("/*", ":*")), resource


STACK_TYPE = "pulumi:pulumi:Stack"


class EngineUrnMonitor(MockMonitor):
    """URNs as the Pulumi engine makes them (the mock's own differ, so a snapshot of them would lie).

    The engine qualifies a type with the *whole* chain of parent types, leaving out the root stack:
    ``<component type>$<child type>`` for a child of a top-level component (pkg/resource/urn.go NewURN).
    The mock monitor prefixes only the last parent type, and includes the stack.
    """

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registered_outputs: dict[str, dict[str, Any]] = {}

    def RegisterResourceOutputs(self, request: Any) -> Any:
        """Keep what each component registered (the mock monitor drops it)."""
        self.registered_outputs[request.urn] = rpc.deserialize_properties(request.outputs)
        return super().RegisterResourceOutputs(request)

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        if parent:
            parent_type = parent.split("::")[2]
            if parent_type != STACK_TYPE:
                type_ = f"{parent_type}${type_}"
        return "urn:pulumi:" + "::".join([pulumi.get_stack(), pulumi.get_project(), type_, name])


def _arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}"


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.records: list[Recorded] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        out = dict(args.inputs)
        self.records.append(Recorded(args.typ, args.name, dict(args.inputs), out))
        plain = unwrap(args.inputs)
        name = plain.get("name") or f"{args.name}-{hashlib.sha256(args.name.encode()).hexdigest()[:7]}"
        typ = args.typ
        if typ == "aws:s3/bucket:Bucket":
            bucket = plain.get("bucket") or plain.get("bucketPrefix", "bucket-") + "20240101abcdef"
            out.update(bucket=bucket, arn=f"arn:aws:s3:::{bucket}", id=bucket)
        elif typ == "aws:ecr/repository:Repository":
            out.update(
                name=name,
                arn=_arn("ecr", f"repository/{name}"),
                repositoryUrl=f"{ECR_HOST}/{name}",
                registryId=ACCOUNT,
            )
        elif typ == "docker:index/image:Image":
            image_name = plain["imageName"]
            repo = image_name.rsplit(":", 1)[0]
            digest = hashlib.sha256(image_name.encode()).hexdigest()
            out.update(repoDigest=f"{repo}@sha256:{digest}", baseImageName=image_name, platform="linux/amd64")
        elif typ == "aws:lambda/function:Function":
            out.update(name=name, arn=_arn("lambda", f"function:{name}"))
        elif typ == "aws:cloudwatch/logGroup:LogGroup":
            out.update(name=name, arn=_arn("logs", f"log-group:{name}"))
        elif typ == "aws:sqs/queue:Queue":
            out.update(
                name=name, arn=_arn("sqs", name), url=f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
            )
        elif typ == "aws:iam/role:Role":
            out.update(name=name, arn=f"arn:aws:iam::{ACCOUNT}:role/{name}")
        elif typ == "aws:secretsmanager/secret:Secret":
            secret_name = plain.get("namePrefix", "secret-") + "AbCdEf"
            out.update(name=secret_name, arn=_arn("secretsmanager", f"secret:{secret_name}"))
            out["id"] = out["arn"]  # a secret's id is its ARN
        elif typ == "aws:sns/topic:Topic":
            out.update(name=name, arn=_arn("sns", name))
        elif typ == "aws:scheduler/schedule:Schedule":
            group = plain.get("groupName") or "default"
            out.update(name=name, arn=_arn("scheduler", f"schedule/{group}/{name}"))
        elif typ == "aws:scheduler/scheduleGroup:ScheduleGroup":
            out.update(name=name, arn=_arn("scheduler", f"schedule-group/{name}"))
        elif typ == "aws:kms/key:Key":
            key_id = hashlib.sha256(args.name.encode()).hexdigest()[:32]
            out.update(keyId=key_id, arn=_arn("kms", f"key/{key_id}"))
        elif typ == "aws:glue/catalogDatabase:CatalogDatabase":
            out.update(name=name, arn=_arn("glue", f"database/{name}"))
        elif typ == "aws:glue/catalogTable:CatalogTable":
            out.update(name=name, arn=_arn("glue", f"table/{plain['databaseName']}/{name}"))
        elif typ == "aws:cloudwatch/metricAlarm:MetricAlarm":
            out.update(name=name, arn=_arn("cloudwatch", f"alarm:{name}"))
        elif typ == "aws:cloudwatch/dashboard:Dashboard":
            out.update(dashboardArn=f"arn:aws:cloudwatch::{ACCOUNT}:dashboard/{plain['dashboardName']}")
        elif typ == "aws:athena/workgroup:Workgroup":
            out.update(name=name, arn=_arn("athena", f"workgroup/{name}"), id=name)
        elif typ == "aws:athena/namedQuery:NamedQuery":
            out["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, args.name))
        elif typ.startswith("aws:"):
            out.setdefault("name", name)
            out["arn"] = _arn(typ.split(":")[1].split("/")[0], name)
        return out.get("id", f"{args.name}-id"), out

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        self.calls.append((args.token, dict(args.args)))
        if args.token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {
                "authorizationToken": "QVdTOmVjci1wYXNzd29yZA==",
                "userName": "AWS",
                "password": ECR_PASSWORD,
                "proxyEndpoint": f"https://{ECR_HOST}",
                "expiresAt": "2030-01-01T00:00:00Z",
                "id": REGION,
            }
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/ci",
                "userId": "AIDA",
                "id": ACCOUNT,
            }
        if args.token == "aws:index/getRegion:getRegion":
            return {"region": REGION, "name": REGION, "id": REGION, "description": "US East (N. Virginia)"}
        if args.token == "aws:s3/getBucket:getBucket":
            bucket = args.args["bucket"]
            return {"arn": f"arn:aws:s3:::{bucket}", "bucket": bucket, "id": bucket, "region": REGION}
        return {}


@dataclass
class ProgramRun:
    mocks: RecordingMocks
    outputs: dict[str, Any] = field(default_factory=dict)
    urns: list[str] = field(default_factory=list)  # every registered resource but the stack, sorted
    registered_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # component URN -> outputs

    @property
    def resources(self) -> list[Recorded]:
        return self.mocks.records

    def of_type(self, typ: str) -> list[Recorded]:
        return [r for r in self.mocks.records if r.typ == typ]

    def one(self, typ: str, name: str) -> Recorded:
        found = [r for r in self.mocks.records if r.typ == typ and r.name == name]
        assert len(found) == 1, f"{typ} {name}: {len(found)} registered"
        return found[0]


def config_strings(config: dict[str, Any]) -> dict[str, str]:
    """Stack YAML values -> the strings Pulumi hands to the program (objects as JSON)."""
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """pulumi_aws warns about its own deprecated aliases at import time: noise, not our code."""
    for item in items:
        if "infra" in item.path.parts:
            item.add_marker(pytest.mark.filterwarnings("ignore::DeprecationWarning"))


def run_with_mocks(
    body: Callable[[], Any],
    *,
    config: dict[str, Any],
    secret_keys: Iterable[str] = (),
    stack: str = "dev",
    preview: bool = False,
    mocks: RecordingMocks | None = None,
    monitor_class: type[MockMonitor] = EngineUrnMonitor,
) -> ProgramRun:
    """Run ``body`` as a Pulumi program under fresh mocks; wait for every registration; collect exports."""
    mocks = mocks or RecordingMocks()
    monitor = monitor_class(mocks)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    pulumi.runtime.set_all_config(config_strings(config), list(secret_keys))
    SETTINGS.rpc_manager.clear()
    SETTINGS.outputs.clear()
    root = pulumi.runtime.settings.get_root_resource()
    if root is not None and hasattr(root, "outputs"):
        root.outputs.clear()
    _sync_await(run_pulumi_func(body))
    by_key = {(u.split("::")[2].split("$")[-1], u.split("::")[3]): u for u in monitor.resources}
    for record in mocks.records:
        record.urn = by_key.get((record.typ, record.name), "")
    run = ProgramRun(mocks, urns=sorted(monitor.resources), registered_outputs=monitor.registered_outputs)
    if root is not None and hasattr(root, "outputs"):
        for key, value in root.outputs.items():
            run.outputs[key] = _sync_await(pulumi.Output.from_input(value).future())
    return run


def run_program(
    config: dict[str, Any], *, token: str | None = TEST_TOKEN, stack: str = "dev", **kw: Any
) -> ProgramRun:
    """The real __main__.py under mocks; the token is given as a secret unless ``token`` is None."""
    config = dict(config)
    secret_keys = []
    if token is not None:
        config[f"{PROJECT}:tiingoApiToken"] = token
        secret_keys.append(f"{PROJECT}:tiingoApiToken")
    return run_with_mocks(
        lambda: runpy.run_path(str(MAIN), run_name="__main__"),
        config=config,
        secret_keys=secret_keys,
        stack=stack,
        **kw,
    )


def stack_files() -> list[Path]:
    return sorted(ROOT.glob("Pulumi.*.yaml"))


def stack_config(path: Path) -> dict[str, Any]:
    return (yaml.safe_load(path.read_text()) or {}).get("config", {}) or {}


def stack_name(path: Path) -> str:
    return path.name[len("Pulumi.") : -len(".yaml")]


@pytest.fixture(scope="session")
def dev_run() -> ProgramRun:
    """The dev stack's program run once for the session (the graph is read-only)."""
    path = ROOT / "Pulumi.dev.yaml"
    return run_program(stack_config(path), stack=stack_name(path))
