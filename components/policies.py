"""Pure IAM / S3 / ECR policy-document builders: plain strings in, plain dicts out (easy to unit-test).

Every statement names exact actions and exact ARNs; the only wildcards are key/stream suffixes under a
named prefix (``<bucket-arn>/prices/daily/*``), never ``"*"`` and never ``service:*``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from stockpipe import layout

Statement = dict[str, Any]

VERSION = "2012-10-17"
# The object prefixes of the S3 layout, as IAM resource suffixes (defined in stockpipe.layout).
PRICES_PREFIX = layout.PRICES_PREFIX + "/"
UNIVERSE_KEY = layout.UNIVERSE_KEY
BACKFILL_PREFIX = layout.BACKFILL_PREFIX


def document(statements: Iterable[Statement]) -> dict[str, Any]:
    return {"Version": VERSION, "Statement": list(statements)}


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True)


def assume_role(service: str, *, source_account: str | None = None) -> dict[str, Any]:
    """Trust policy for one AWS service; with an account, the confused-deputy guard AWS recommends."""
    statement: Statement = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if source_account:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": source_account}}
    return document([statement])


def allow(sid: str, actions: list[str], resources: list[str], **extra: Any) -> Statement:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources, **extra}


def list_bucket(bucket_arn: str) -> Statement:
    """ListBucket on the one bucket, unconditioned.

    S3 answers a GET of a missing key with 404 only when the caller may list the bucket *for that
    request*; an ``s3:prefix`` condition is absent from GetObject requests, so a prefix-conditioned
    grant would turn every "not there yet" into 403 (AccessDenied) and break first writes.
    """
    return allow("ListDataBucket", ["s3:ListBucket"], [bucket_arn])


def scraper_s3(bucket_arn: str) -> list[Statement]:
    """Read/write the price files, read the universe; nothing else in the bucket."""
    return [
        allow("ReadWritePrices", ["s3:GetObject", "s3:PutObject"], [f"{bucket_arn}/{PRICES_PREFIX}*"]),
        allow("ReadUniverse", ["s3:GetObject"], [f"{bucket_arn}/{UNIVERSE_KEY}"]),
        list_bucket(bucket_arn),
    ]


def orchestrator_s3(bucket_arn: str) -> list[Statement]:
    """Read/write the backfill progress, read the universe."""
    return [
        allow("ReadWriteProgress", ["s3:GetObject", "s3:PutObject"], [f"{bucket_arn}/{BACKFILL_PREFIX}*"]),
        allow("ReadUniverse", ["s3:GetObject"], [f"{bucket_arn}/{UNIVERSE_KEY}"]),
        list_bucket(bucket_arn),
    ]


def read_secret(secret_arn: str) -> Statement:
    return allow("ReadTiingoToken", ["secretsmanager:GetSecretValue"], [secret_arn])


def write_logs(log_group_arn: str) -> Statement:
    """Streams of the function's own log group only (the group itself is created by Pulumi)."""
    return allow(
        "WriteOwnLogs",
        ["logs:CreateLogStream", "logs:PutLogEvents"],
        [f"{log_group_arn}:log-stream:*"],
    )


def invoke_function(function_arn: str, sid: str = "InvokeTarget") -> Statement:
    return allow(sid, ["lambda:InvokeFunction"], [function_arn])


def send_to_queue(queue_arn: str, sid: str = "SendToDeadLetterQueue") -> Statement:
    return allow(sid, ["sqs:SendMessage"], [queue_arn])


def tls_only_bucket_policy(bucket_arn: str) -> dict[str, Any]:
    """Deny every request that does not use TLS (Security Hub S3.5)."""
    return document(
        [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ]
    )


def ecr_lifecycle(keep: int) -> dict[str, Any]:
    """Expire untagged leftovers after a day and keep the newest ``keep`` tagged images.

    Tags are content hashes and every deploy pins the function to its newest image's digest, so the
    image in use is always the most recently pushed one and can never fall out of "the newest N".
    """
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": "expire untagged images after 1 day",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": 1,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "description": f"keep the newest {keep} images",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep},
                "action": {"type": "expire"},
            },
        ]
    }
