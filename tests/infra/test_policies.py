"""The policy pack's plain functions: on hand-built resources, on the real program's graph, and broken."""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi_policy import PolicyResource, ResourceValidationArgs, StackValidationArgs

from policy import policies as p
from tests.infra.conftest import ProgramRun, Recorded, unwrap

ROOT = Path(__file__).resolve().parents[2]


def resource_args(typ: str, props: dict[str, Any], name: str = "r") -> ResourceValidationArgs:
    return ResourceValidationArgs(
        resource_type=typ,
        props=props,
        urn=f"urn:pulumi:dev::stock-pipeline::{typ}::{name}",
        name=name,
        opts=None,
        provider=None,
    )


def policy_resource(typ: str, props: dict[str, Any], name: str = "r") -> PolicyResource:
    return PolicyResource(
        resource_type=typ,
        props=props,
        urn=f"urn:pulumi:dev::stock-pipeline::{typ}::{name}",
        name=name,
        opts=None,
        provider=None,
        parent=None,
        dependencies=[],
        property_dependencies={},
    )


def program_resources(run: ProgramRun) -> list[Recorded]:
    return [r for r in run.resources if not r.typ.startswith("stock-pipeline:")]


def stack_args(records: list[Recorded]) -> StackValidationArgs:
    """As after `pulumi up`: stack policies see the resources' outputs (names known)."""
    return StackValidationArgs([policy_resource(r.typ, unwrap(r.outputs), r.name) for r in records])


def run_resource_policy(check: Callable, records: list[Recorded]) -> list[str]:
    found: list[str] = []
    for record in records:
        found += [
            f"{record.name}: {m}"
            for m in p.violations(check, resource_args(record.typ, record.plain, record.name))
        ]
    return found


# --- the real program passes every policy --------------------------------------------------------------


@pytest.mark.parametrize("name", list(p.RESOURCE_POLICIES))
def test_program_passes_resource_policy(dev_run, name):
    _, check = p.RESOURCE_POLICIES[name]
    target = BROKEN_RESOURCES[name][0][0]
    assert any(r.typ == target for r in program_resources(dev_run))  # the pass means something
    assert run_resource_policy(check, program_resources(dev_run)) == []


@pytest.mark.parametrize("name", list(p.STACK_POLICIES))
def test_program_passes_stack_policy(dev_run, name):
    _, check = p.STACK_POLICIES[name]
    assert p.violations(check, stack_args(program_resources(dev_run))) == []


# --- a deliberately broken resource fails each policy ---------------------------------------------------


def _mutate(
    run: ProgramRun, typ: str, change: Callable[[dict], None], name_suffix: str = ""
) -> tuple[str, dict]:
    record = next(r for r in program_resources(run) if r.typ == typ and r.name.endswith(name_suffix))
    props = copy.deepcopy(record.plain)
    change(props)
    return typ, props


def _set(key: str, value: Any) -> Callable[[dict], None]:
    def change(props: dict) -> None:
        target = props
        *path, last = key.split(".")
        for part in path:
            target = target[part]
        target[last] = value

    return change


def _policy_doc(doc: dict) -> Callable[[dict], None]:
    return _set("policy", json.dumps(doc))


BROKEN_RESOURCES: dict[str, list[tuple[str, Callable[[dict], None], str]]] = {
    "s3-public-access-block": [(p.PUBLIC_ACCESS_BLOCK, _set("restrictPublicBuckets", False), "")],
    "s3-tls-only": [
        (p.BUCKET_POLICY, _policy_doc({"Version": "2012-10-17", "Statement": []}), ""),
        (p.BUCKET_POLICY, _set("policy", "not json"), ""),
    ],
    "s3-default-encryption": [(p.BUCKET_SSE, _set("rules", []), "")],
    "ecr-scan-and-immutable-tags": [
        (p.ECR_REPOSITORY, _set("imageScanningConfiguration.scanOnPush", False), ""),
        (p.ECR_REPOSITORY, _set("imageTagMutability", "MUTABLE"), ""),
    ],
    "ecr-lifecycle-expires": [(p.ECR_LIFECYCLE, _policy_doc({"rules": []}), "")],
    "iam-no-wildcards": [
        (
            "aws:iam/rolePolicy:RolePolicy",
            _policy_doc({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b"}]}),
            "-role-policy",
        ),
        (
            "aws:iam/rolePolicy:RolePolicy",
            _policy_doc({"Statement": [{"Effect": "Allow", "Action": ["*"], "Resource": "arn:aws:s3:::b"}]}),
            "-role-policy",
        ),
        (
            "aws:iam/rolePolicy:RolePolicy",
            _policy_doc({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}),
            "-role-policy",
        ),
    ],
    "lambda-image-digest-x86": [
        (p.LAMBDA_FUNCTION, _set("imageUri", "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:latest"), ""),
        (p.LAMBDA_FUNCTION, _set("architectures", ["arm64"]), ""),
    ],
    "lambda-no-plaintext-secrets": [
        (p.LAMBDA_FUNCTION, _set("environment.variables.TIINGO_API_TOKEN", "tok-CANARY-7f3a9c1e5b"), ""),
        (p.LAMBDA_FUNCTION, _set("environment.variables.TIINGO_SECRET_ARN", "tok-CANARY-7f3a9c1e5b"), ""),
    ],
    "log-group-retention": [(p.LOG_GROUP, _set("retentionInDays", 0), "")],
}


def test_every_policy_has_broken_cases():
    assert set(BROKEN_RESOURCES) == set(p.RESOURCE_POLICIES)


@pytest.mark.parametrize(
    ("name", "case"),
    [(name, i) for name, cases in BROKEN_RESOURCES.items() for i in range(len(cases))],
)
def test_broken_resource_fails_its_policy(dev_run, name, case):
    typ, change, suffix = BROKEN_RESOURCES[name][case]
    typ, props = _mutate(dev_run, typ, change, suffix)
    _, check = p.RESOURCE_POLICIES[name]
    messages = p.violations(check, resource_args(typ, props))
    assert messages
    assert all("tok-CANARY" not in m for m in messages)  # violations never echo a secret


def _drop(run: ProgramRun, typ: str) -> list[Recorded]:
    return [r for r in program_resources(run) if r.typ != typ]


@pytest.mark.parametrize("missing", [p.PUBLIC_ACCESS_BLOCK, p.BUCKET_POLICY, p.BUCKET_SSE])
def test_bucket_without_a_companion_fails(dev_run, missing):
    messages = p.violations(p.s3_buckets_hardened, stack_args(_drop(dev_run, missing)))
    assert len(messages) == len(dev_run.of_type(p.BUCKET))  # one per bucket (data, Athena results)
    assert all("has no" in message for message in messages)


def test_repository_without_lifecycle_fails(dev_run):
    records = [
        r for r in program_resources(dev_run) if not (r.typ == p.ECR_LIFECYCLE and "orchestrator" in r.name)
    ]
    messages = p.violations(p.ecr_repositories_have_lifecycle, stack_args(records))
    assert messages == ["ECR repository tiingo-backfill-orchestrator-repo has no lifecycle policy (ECR.3)"]


def test_stack_policies_follow_property_dependencies_when_names_are_unknown():
    bucket = policy_resource(p.BUCKET, {"bucket": p.UNKNOWN}, "data-bucket")
    pab = policy_resource(p.PUBLIC_ACCESS_BLOCK, {"bucket": p.UNKNOWN}, "pab")
    pab.property_dependencies = {"bucket": [bucket]}
    messages = p.violations(p.s3_buckets_hardened, StackValidationArgs([bucket, pab]))
    assert messages == [
        "bucket data-bucket has no bucket policy (S3.5 needs a TLS-only one)",
        "bucket data-bucket has no default encryption",
    ]


# --- hand-built resources ------------------------------------------------------------------------------


def test_unknown_values_during_preview_are_skipped():
    function = {"packageType": "Image", "imageUri": p.UNKNOWN, "architectures": ["x86_64"]}
    assert p.violations(p.lambda_image_pinned, resource_args(p.LAMBDA_FUNCTION, function)) == []
    assert (
        p.violations(
            p.iam_no_wildcards, resource_args("aws:iam/rolePolicy:RolePolicy", {"policy": p.UNKNOWN})
        )
        == []
    )
    env = {"environment": {"variables": {"TIINGO_SECRET_ARN": p.UNKNOWN}}}
    assert p.violations(p.lambda_no_plaintext_secrets, resource_args(p.LAMBDA_FUNCTION, env)) == []


def test_zip_functions_are_not_held_to_image_rules():
    assert p.violations(p.lambda_image_pinned, resource_args(p.LAMBDA_FUNCTION, {"packageType": "Zip"})) == []


def test_secret_references_are_allowed_and_values_are_not_echoed():
    ok = {
        "environment": {
            "variables": {
                "DB_PASSWORD_ARN": "arn:aws:ssm:us-east-1:123456789012:parameter/db",
                "LOG_LEVEL": "INFO",
            }
        }
    }
    assert p.violations(p.lambda_no_plaintext_secrets, resource_args(p.LAMBDA_FUNCTION, ok)) == []
    bad = {"environment": {"variables": {"API_KEY": "hunter2"}}}
    (message,) = p.violations(p.lambda_no_plaintext_secrets, resource_args(p.LAMBDA_FUNCTION, bad))
    assert "API_KEY" in message
    assert "hunter2" not in message


def test_deny_statements_and_suffix_wildcards_are_fine_for_iam():
    doc = {
        "Statement": [
            {"Effect": "Deny", "Action": "s3:*", "Resource": "*"},
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::b/prices/daily/*"]},
        ]
    }
    assert p.wildcard_problems(doc) == []
    assert p.wildcard_problems(
        {"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b"}]}
    )


def test_policy_documents_may_be_objects():
    doc = {
        "Statement": [
            {"Effect": "Deny", "Action": "s3:*", "Condition": {"Bool": {"aws:SecureTransport": False}}}
        ]
    }
    assert p.violations(p.s3_tls_only, resource_args(p.BUCKET_POLICY, {"policy": doc})) == []


def test_other_resource_types_are_ignored():
    for _, check in p.RESOURCE_POLICIES.values():
        assert p.violations(check, resource_args("aws:sns/topic:Topic", {"name": "x"})) == []


# --- the pack itself ---------------------------------------------------------------------------------


def test_pack_files_wire_every_policy():
    pack = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert pack["runtime"]["name"] == "python"
    source = (ROOT / "policy" / "__main__.py").read_text()
    tree = ast.parse(source)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert {
        "PolicyPack",
        "ResourceValidationPolicy",
        "StackValidationPolicy",
        "RESOURCE_POLICIES",
        "STACK_POLICIES",
    } <= names
    requirements = (ROOT / "policy" / "requirements.txt").read_text()
    assert re.search(r"^pulumi-policy==", requirements, re.MULTILINE)
    for name in p.all_names():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name)
