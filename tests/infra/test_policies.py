"""The policy checks as functions: fast edge cases on plain dicts and on pulumi_policy's own proxies.

The contract (the real program and one broken resource per policy, through the Analyzer protocol) is
tests/infra/test_policy_protocol.py; these cover the corners cheaply.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi_policy import PolicyResource, ResourceValidationArgs, StackValidationArgs
from pulumi_policy.proxy import UNKNOWN_ARRAY_VALUE, UNKNOWN_BOOLEAN_VALUE, unknown_checking_proxy

from policy import policies as p

ROOT = Path(__file__).resolve().parents[2]
BUCKET_ARN = "arn:aws:s3:::data"


def resource_args(typ: str, props: dict[str, Any], *, proxy: bool = True) -> ResourceValidationArgs:
    """As the pack hands them over: the properties wrapped in pulumi_policy's unknown-checking proxy."""
    return ResourceValidationArgs(
        resource_type=typ,
        props=unknown_checking_proxy(props) if proxy else props,
        urn=f"urn:pulumi:dev::stock-pipeline::{typ}::r",
        name="r",
        opts=None,
        provider=None,
    )


def check(fn, typ: str, props: dict[str, Any]) -> list[str]:
    """The check's messages; the same on a proxy and on a plain dict."""
    found = p.violations(fn, resource_args(typ, props))
    assert p.violations(fn, resource_args(typ, props, proxy=False)) == found
    return found


def tls_policy(resources: Any, *, principal: Any = "*", secure: Any = "false", bucket: str = "data") -> dict:
    statement = {
        "Effect": "Deny",
        "Principal": principal,
        "Action": "s3:*",
        "Resource": resources,
        "Condition": {"Bool": {"aws:SecureTransport": secure}},
    }
    return {"bucket": bucket, "policy": json.dumps({"Version": "2012-10-17", "Statement": [statement]})}


# --- reading proxies --------------------------------------------------------------------------------


def test_get_and_elements_read_proxies_and_turn_unknowns_into_markers():
    props = unknown_checking_proxy(
        {"a": {"b": p.UNKNOWN}, "flags": [True, UNKNOWN_BOOLEAN_VALUE], "list": UNKNOWN_ARRAY_VALUE}
    )
    assert p.get(p.get(props, "a"), "b") == p.UNKNOWN
    assert p.elements(p.get(props, "flags")) == [True, p.UNKNOWN]
    assert p.get(props, "list") == p.UNKNOWN
    assert p.get(props, "missing", 7) == 7
    assert p.elements(None) == []
    assert p.elements("s3:GetObject") == ["s3:GetObject"]
    assert p.get("not a mapping", "x") is None


# --- S3 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "props",
    [
        tls_policy([BUCKET_ARN, f"{BUCKET_ARN}/*"]),
        tls_policy([BUCKET_ARN, f"{BUCKET_ARN}/*"], principal={"AWS": "*"}, secure=False),
        tls_policy([BUCKET_ARN, f"{BUCKET_ARN}/*"], secure=["false"]),
        tls_policy("*"),
        tls_policy(["arn:aws-cn:s3:::data", "arn:aws-cn:s3:::data/*"]),
        {**tls_policy([BUCKET_ARN, f"{BUCKET_ARN}/*"]), "bucket": p.UNKNOWN},
    ],
    ids=["strings", "AWS-star-and-bool", "list-condition", "star", "china-partition", "bucket-unknown"],
)
def test_tls_deny_forms_aws_accepts(props):
    assert check(p.s3_tls_only, p.BUCKET_POLICY, props) == []


@pytest.mark.parametrize(
    "props",
    [
        tls_policy([BUCKET_ARN]),
        tls_policy([f"{BUCKET_ARN}/*"]),
        tls_policy(["arn:aws:s3:::other", "arn:aws:s3:::other/*"]),
        tls_policy([BUCKET_ARN, f"{BUCKET_ARN}/*"], secure="true"),
        tls_policy([BUCKET_ARN, f"{BUCKET_ARN}/*"], principal={"AWS": "arn:aws:iam::1:root"}),
    ],
    ids=["bucket-only", "objects-only", "another-bucket", "secure-true", "one-principal"],
)
def test_tls_deny_that_leaves_a_gap_fails(props):
    (message,) = check(p.s3_tls_only, p.BUCKET_POLICY, props)
    assert "/*" in message


def test_policy_documents_may_be_objects():
    props = tls_policy([BUCKET_ARN, f"{BUCKET_ARN}/*"])
    props["policy"] = json.loads(props["policy"])
    assert check(p.s3_tls_only, p.BUCKET_POLICY, props) == []


def test_encryption_with_an_unknown_key_is_not_judged_but_a_missing_algorithm_is():
    unknown = {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": p.UNKNOWN}}]}
    assert check(p.s3_encryption, p.BUCKET_SSE, unknown) == []
    kms = {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}]}
    assert check(p.s3_encryption, p.BUCKET_SSE, kms) == []
    assert check(p.s3_encryption, p.BUCKET_SSE, {"rules": [{}]})


def test_public_access_flags_that_are_unknown_are_skipped_but_false_ones_reported():
    props = dict.fromkeys(p.PUBLIC_ACCESS_FLAGS, True) | {"blockPublicAcls": p.UNKNOWN}
    assert check(p.s3_public_access_block, p.PUBLIC_ACCESS_BLOCK, props) == []
    (message,) = check(p.s3_public_access_block, p.PUBLIC_ACCESS_BLOCK, props | {"ignorePublicAcls": False})
    assert "ignorePublicAcls" in message


def test_stack_policies_follow_property_dependencies_when_names_are_unknown():
    def resource(typ: str, props: dict, name: str) -> PolicyResource:
        urn = f"urn:pulumi:dev::stock-pipeline::{typ}::{name}"
        return PolicyResource(typ, unknown_checking_proxy(props), urn, name, None, None, None, [], {})

    bucket = resource(p.BUCKET, {"bucket": p.UNKNOWN}, "data-bucket")
    pab = resource(p.PUBLIC_ACCESS_BLOCK, {"bucket": p.UNKNOWN}, "pab")
    pab.property_dependencies = {"bucket": [bucket]}
    messages = p.violations(p.s3_buckets_hardened, StackValidationArgs([bucket, pab]))
    assert messages == [
        "bucket data-bucket has no bucket policy (S3.5 needs a TLS-only one)",
        "bucket data-bucket has no default encryption",
    ]


# --- IAM, Lambda, logs ------------------------------------------------------------------------------


def test_deny_statements_and_suffix_wildcards_are_fine_for_iam():
    doc = {
        "Statement": [
            {"Effect": "Deny", "Action": "s3:*", "Resource": "*"},
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::b/prices/daily/*"]},
        ]
    }
    assert p.wildcard_problems(unknown_checking_proxy(doc)) == []
    assert p.wildcard_problems(
        {"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b"}]}
    )


def test_role_inline_policies_are_checked_one_by_one_and_unknown_ones_skipped():
    admin = json.dumps({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    props = {"inlinePolicies": [{"name": "later", "policy": p.UNKNOWN}, {"name": "admin", "policy": admin}]}
    messages = check(p.iam_no_wildcards, p.IAM_ROLE, props)
    assert len(messages) == 2
    assert all("inline policy 'admin'" in m for m in messages)
    assert check(p.iam_no_wildcards, p.IAM_ROLE, {"inlinePolicies": p.UNKNOWN}) == []


def test_unknown_values_during_preview_are_skipped():
    function = {"packageType": "Image", "imageUri": p.UNKNOWN, "architectures": ["x86_64"]}
    assert check(p.lambda_image_pinned, p.LAMBDA_FUNCTION, function) == []
    assert check(p.iam_no_wildcards, "aws:iam/rolePolicy:RolePolicy", {"policy": p.UNKNOWN}) == []
    env = {"environment": {"variables": {"TIINGO_SECRET_ARN": p.UNKNOWN}}}
    assert check(p.lambda_no_plaintext_secrets, p.LAMBDA_FUNCTION, env) == []
    assert check(p.log_group_retention, p.LOG_GROUP, {"retentionInDays": p.UNKNOWN}) == []


def test_zip_functions_are_not_held_to_image_rules():
    assert check(p.lambda_image_pinned, p.LAMBDA_FUNCTION, {"packageType": "Zip"}) == []


def test_secret_references_are_allowed_and_values_are_not_echoed():
    ok = {
        "environment": {
            "variables": {
                "DB_PASSWORD_ARN": "arn:aws:ssm:us-east-1:123456789012:parameter/db",
                "LOG_LEVEL": "INFO",
            }
        }
    }
    assert check(p.lambda_no_plaintext_secrets, p.LAMBDA_FUNCTION, ok) == []
    bad = {"environment": {"variables": {"API_KEY": "hunter2"}}}
    (message,) = check(p.lambda_no_plaintext_secrets, p.LAMBDA_FUNCTION, bad)
    assert "API_KEY" in message
    assert "hunter2" not in message


def test_settings_about_a_secret_are_not_secrets_but_cannot_smuggle_one():
    settings = {
        "environment": {"variables": {"TIINGO_TOKEN_MAX_AGE_MINUTES": "15", "SECRET_CACHE_ENABLED": "true"}}
    }
    assert check(p.lambda_no_plaintext_secrets, p.LAMBDA_FUNCTION, settings) == []
    smuggled = {"environment": {"variables": {"TIINGO_TOKEN_MAX_AGE_MINUTES": "tok-CANARY-7f3a9c1e5b"}}}
    (message,) = check(p.lambda_no_plaintext_secrets, p.LAMBDA_FUNCTION, smuggled)
    assert "CANARY" not in message


def test_retention_arrives_as_a_float_through_the_protocol():
    assert check(p.log_group_retention, p.LOG_GROUP, {"retentionInDays": 14.0}) == []
    assert check(p.log_group_retention, p.LOG_GROUP, {"retentionInDays": True})


def test_other_resource_types_are_ignored():
    for _, fn in p.RESOURCE_POLICIES.values():
        assert check(fn, "aws:sqs/queue:Queue", {"name": "x", "policy": "{}"}) == []


def test_service_trust_needs_a_source_condition_and_an_unknown_one_is_skipped():
    def trust(condition: dict | None) -> dict:
        statement = {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
        return {
            "assumeRolePolicy": json.dumps(
                {"Statement": [statement | ({"Condition": condition} if condition else {})]}
            )
        }

    assert (
        check(p.iam_service_trust_scoped, p.IAM_ROLE, trust({"StringEquals": {"aws:SourceAccount": "1"}}))
        == []
    )
    assert (
        check(p.iam_service_trust_scoped, p.IAM_ROLE, trust({"ArnLike": {"AWS:SourceArn": "arn:aws:x"}}))
        == []
    )
    assert check(p.iam_service_trust_scoped, p.IAM_ROLE, trust({"StringEquals": {"aws:PrincipalTag/x": "1"}}))
    assert check(p.iam_service_trust_scoped, p.IAM_ROLE, trust(None))
    assert check(p.iam_service_trust_scoped, p.IAM_ROLE, {"assumeRolePolicy": p.UNKNOWN}) == []
    people = {
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:root"}, "Action": "sts:AssumeRole"}
        ]
    }
    assert check(p.iam_service_trust_scoped, p.IAM_ROLE, {"assumeRolePolicy": json.dumps(people)}) == []


def test_topic_encryption_unknown_key_is_skipped():
    assert check(p.sns_topic_encrypted, p.SNS_TOPIC, {"kmsMasterKeyId": p.UNKNOWN}) == []
    assert check(p.sns_topic_encrypted, p.SNS_TOPIC, {"name": "x"})


# --- the pack itself ---------------------------------------------------------------------------------


def test_pack_files_wire_every_policy():
    pack = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert pack["runtime"]["name"] == "python"
    tree = ast.parse((ROOT / "policy" / "__main__.py").read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert {
        "PolicyPack",
        "ResourceValidationPolicy",
        "StackValidationPolicy",
        "RESOURCE_POLICIES",
        "STACK_POLICIES",
    } <= names
    requirements = (ROOT / "policy" / "requirements.txt").read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", requirements, re.MULTILINE))
    lock = dict(
        re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (ROOT / "requirements.lock").read_text(), re.MULTILINE)
    )
    lock = {name.lower().replace("_", "-"): version for name, version in lock.items()}
    assert set(pins) == {"pulumi", "pulumi-policy"}
    assert all(lock[name] == version for name, version in pins.items())  # the pack runs what the tests ran
    for name in p.all_names():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name)
