"""Deliberately broken resources, one or more per policy: each is a real resource of the program, changed.

Shared by the protocol tests (the contract) and the fast plain-dict tests of the check functions.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from policy import policies as p
from tests.infra.conftest import Recorded

ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
CANARY = "tok-CANARY-7f3a9c1e5b"  # tests.conftest.TEST_TOKEN: a violation must never echo it


@dataclass(frozen=True)
class Broken:
    label: str
    typ: str
    change: Callable[[dict[str, Any]], None]
    name_suffix: str = ""

    def props(self, records: list[Recorded]) -> tuple[Recorded, dict[str, Any]]:
        """The first matching program resource and a changed deep copy of its inputs."""
        record = next(r for r in records if r.typ == self.typ and r.name.endswith(self.name_suffix))
        props = copy.deepcopy(record.plain)
        self.change(props)
        return record, props


def set_path(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(props: dict[str, Any]) -> None:
        target = props
        *path, last = key.split(".")
        for part in path:
            target = target[part]
        target[last] = value

    return change


def policy_doc(doc: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return set_path("policy", json.dumps(doc))


def _deny_bucket_arn_only(props: dict[str, Any]) -> None:
    """The TLS deny keeps only the bucket ARN: objects stay reachable over HTTP."""
    doc = json.loads(props["policy"])
    for statement in doc["Statement"]:
        statement["Resource"] = [r for r in statement["Resource"] if not r.endswith("/*")]
    props["policy"] = json.dumps(doc)


def _deny_for_one_principal(props: dict[str, Any]) -> None:
    doc = json.loads(props["policy"])
    doc["Statement"][0]["Principal"] = {"AWS": "arn:aws:iam::123456789012:root"}
    props["policy"] = json.dumps(doc)


def _inline_admin(props: dict[str, Any]) -> None:
    props["inlinePolicies"] = [{"name": "admin", "policy": json.dumps(ADMIN)}]


def _unscoped_trust(props: dict[str, Any]) -> None:
    doc = json.loads(props["assumeRolePolicy"])
    for statement in doc["Statement"]:
        statement.pop("Condition", None)
    props["assumeRolePolicy"] = json.dumps(doc)


def _allow(action: Any, resource: Any) -> Callable[[dict[str, Any]], None]:
    statement = {"Effect": "Allow", "Action": action, "Resource": resource}
    return policy_doc({"Version": "2012-10-17", "Statement": [statement]})


BROKEN: dict[str, list[Broken]] = {
    "s3-public-access-block": [
        Broken("one flag off", p.PUBLIC_ACCESS_BLOCK, set_path("restrictPublicBuckets", False))
    ],
    "s3-tls-only": [
        Broken("no statement", p.BUCKET_POLICY, policy_doc({"Version": "2012-10-17", "Statement": []})),
        Broken("not JSON", p.BUCKET_POLICY, set_path("policy", "not json")),
        Broken("deny on the bucket ARN only", p.BUCKET_POLICY, _deny_bucket_arn_only),
        Broken("deny for one principal", p.BUCKET_POLICY, _deny_for_one_principal),
    ],
    "s3-default-encryption": [Broken("no rules", p.BUCKET_SSE, set_path("rules", []))],
    "ecr-scan-and-immutable-tags": [
        Broken("no scan on push", p.ECR_REPOSITORY, set_path("imageScanningConfiguration.scanOnPush", False)),
        Broken("mutable tags", p.ECR_REPOSITORY, set_path("imageTagMutability", "MUTABLE")),
    ],
    "ecr-lifecycle-expires": [Broken("no rules", p.ECR_LIFECYCLE, policy_doc({"rules": []}))],
    "iam-no-wildcards": [
        Broken("service wildcard", ROLE_POLICY, _allow("s3:*", "arn:aws:s3:::b"), "-role-policy"),
        Broken("action *", ROLE_POLICY, _allow(["*"], "arn:aws:s3:::b"), "-role-policy"),
        Broken("Resource *", ROLE_POLICY, _allow("s3:GetObject", "*"), "-role-policy"),
        Broken("admin in a role's inline policy", p.IAM_ROLE, _inline_admin),
    ],
    "iam-service-trust-scoped": [
        Broken("Lambda trust without a condition", p.IAM_ROLE, _unscoped_trust, "price-scraper-role"),
        Broken("Scheduler trust without a condition", p.IAM_ROLE, _unscoped_trust, "-scheduler-role"),
    ],
    "sns-topic-encrypted": [Broken("no key", p.SNS_TOPIC, set_path("kmsMasterKeyId", ""))],
    "lambda-image-digest-x86": [
        Broken(
            "tag, not digest",
            p.LAMBDA_FUNCTION,
            set_path("imageUri", "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:latest"),
        ),
        Broken("arm64", p.LAMBDA_FUNCTION, set_path("architectures", ["arm64"])),
    ],
    "lambda-no-plaintext-secrets": [
        Broken(
            "token in the env", p.LAMBDA_FUNCTION, set_path("environment.variables.TIINGO_API_TOKEN", CANARY)
        ),
        Broken(
            "value in an ARN var",
            p.LAMBDA_FUNCTION,
            set_path("environment.variables.TIINGO_SECRET_ARN", CANARY),
        ),
    ],
    "log-group-retention": [Broken("retention 0", p.LOG_GROUP, set_path("retentionInDays", 0))],
}

# Broken values next to values a fresh preview cannot know yet: the known one must still be judged.
BROKEN_IN_PREVIEW: dict[str, list[Broken]] = {
    "lambda-image-digest-x86": [
        Broken("arm64, digest unknown", p.LAMBDA_FUNCTION, set_path("architectures", ["arm64"]))
    ],
    "lambda-no-plaintext-secrets": [
        Broken(
            "token next to an unknown bucket",
            p.LAMBDA_FUNCTION,
            set_path("environment.variables.TIINGO_API_TOKEN", CANARY),
        )
    ],
    "iam-no-wildcards": [
        Broken("admin inline policy on a role with unknown ARNs", p.IAM_ROLE, _inline_admin)
    ],
}

# Stack policies: the program without one companion resource.
MISSING_COMPANION = {
    "s3-buckets-hardened": [p.PUBLIC_ACCESS_BLOCK, p.BUCKET_POLICY, p.BUCKET_SSE],
    "ecr-repositories-have-lifecycle": [p.ECR_LIFECYCLE],
}


def cases(table: dict[str, list[Broken]]) -> list[tuple[str, Broken]]:
    return [(name, broken) for name, brokens in table.items() for broken in brokens]
