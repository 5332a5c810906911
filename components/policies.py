"""Pure IAM / S3 / ECR / SNS / KMS policy-document builders: plain strings in, plain dicts out.

Every identity statement names exact actions and exact ARNs; the only wildcards are key/stream suffixes
under a named prefix (``<bucket-arn>/prices/daily/*``), never ``"*"`` and never ``service:*``. Every
service trust names the account (and, where the service sends one, the source ARN) the service acts for:
the confused-deputy guard. All of them pass ``parliament`` (tests/infra/test_iam_lint.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from stockpipe import layout

Statement = dict[str, Any]
CLOUDWATCH_SERVICE = "cloudwatch.amazonaws.com"

VERSION = "2012-10-17"
# The object prefixes of the S3 layout, as IAM resource suffixes (defined in stockpipe.layout).
PRICES_PREFIX = layout.PRICES_PREFIX + "/"
UNIVERSE_KEY = layout.UNIVERSE_KEY
BACKFILL_PREFIX = layout.BACKFILL_PREFIX
# The objects the orchestrator reads and writes: its progress (one object per ticker), the index (root
# and shards), and the one-file progress of earlier versions (read once, to migrate it).
ORCHESTRATOR_OBJECTS = (
    layout.BACKFILL_INDEX_KEY,
    layout.BACKFILL_SHARDS_PREFIX + "*",
    layout.BACKFILL_TICKERS_PREFIX + "*",
    layout.PROGRESS_KEY,
)
# The top-level prefixes the pipeline owns in its bucket: lifecycle rules are scoped to these, so an
# adopted bucket's other data is never touched.
PIPELINE_PREFIXES = (
    layout.PRICES_PREFIX.split("/", 1)[0] + "/",
    UNIVERSE_KEY.split("/", 1)[0] + "/",
    BACKFILL_PREFIX,
)


def document(statements: Iterable[Statement]) -> dict[str, Any]:
    return {"Version": VERSION, "Statement": list(statements)}


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True)


def assume_role(
    service: str, *, source_account: str | None = None, source_arn: str | None = None
) -> dict[str, Any]:
    """Trust policy for one AWS service, with the confused-deputy guard AWS recommends.

    ``aws:SourceAccount``: the service may assume the role only when acting for this account;
    ``aws:SourceArn``: only for that one resource (an ARN, so compared with ``ArnEquals``).
    """
    statement: Statement = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    condition: dict[str, dict[str, str]] = {}
    if source_account:
        condition["StringEquals"] = {"aws:SourceAccount": source_account}
    if source_arn:
        condition["ArnEquals"] = {"aws:SourceArn": source_arn}
    if condition:
        statement["Condition"] = condition
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
    """Read/write the price files and each ticker's fetch times, read the universe; nothing else."""
    return [
        allow("ReadWritePrices", ["s3:GetObject", "s3:PutObject"], [f"{bucket_arn}/{PRICES_PREFIX}*"]),
        allow(
            "ReadWriteFetchTimes",
            ["s3:GetObject", "s3:PutObject"],
            [f"{bucket_arn}/{layout.FETCH_TIMES_PREFIX}*"],
        ),
        allow("ReadUniverse", ["s3:GetObject"], [f"{bucket_arn}/{UNIVERSE_KEY}"]),
        list_bucket(bucket_arn),
    ]


def orchestrator_s3(bucket_arn: str) -> list[Statement]:
    """Read/write exactly the backfill progress, read the universe."""
    progress = [f"{bucket_arn}/{key}" for key in ORCHESTRATOR_OBJECTS]
    return [
        allow("ReadWriteProgress", ["s3:GetObject", "s3:PutObject"], progress),
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


def _arn_parts(arn: str) -> tuple[str, str, str]:
    """(partition, region, account) of an ARN ``arn:<partition>:<service>:<region>:<account>:...``."""
    _, partition, _, region, account, _ = arn.split(":", 5)
    return partition, region, account


def alarm_topic_policy(topic_arn: str) -> dict[str, Any]:
    """Only CloudWatch alarms of the topic's own account may publish; no user or role, not even the account's.

    The Allow is AWS's documented topic policy for alarm actions (Principal cloudwatch.amazonaws.com,
    ``aws:SourceArn`` = the account's alarms, ``aws:SourceAccount``). Without the Deny, any IAM principal
    of the account with ``sns:Publish`` in an identity policy could still publish.
    ``aws:PrincipalIsAWSService`` is in every signed request and true only when a service principal calls
    directly, as CloudWatch does for an alarm action; other services get no Allow. Test an alarm with
    ``aws cloudwatch set-alarm-state``.
    """
    partition, region, account = _arn_parts(topic_arn)
    alarms = f"arn:{partition}:cloudwatch:{region}:{account}:alarm:*"
    return document(
        [
            {
                "Sid": "CloudWatchAlarmsOfThisAccountPublish",
                "Effect": "Allow",
                "Principal": {"Service": CLOUDWATCH_SERVICE},
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {
                    "ArnLike": {"aws:SourceArn": alarms},
                    "StringEquals": {"aws:SourceAccount": account},
                },
            },
            {
                "Sid": "NoUserOrRolePublishes",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {"Bool": {"aws:PrincipalIsAWSService": "false"}},
            },
        ]
    )


def alarm_key_policy(account: str, partition: str = "aws") -> dict[str, Any]:
    """Key policy of the alarm topic's customer managed KMS key.

    CloudWatch alarms cannot publish to a topic encrypted with the AWS managed key ``alias/aws/sns``: its
    key policy does not let cloudwatch.amazonaws.com call ``kms:GenerateDataKey`` / ``kms:Decrypt`` and
    cannot be edited (AWS re:Post knowledge center, "cloudwatch-configure-alarm-sns"). So the topic uses
    a customer managed key whose policy grants exactly those two actions to CloudWatch, next to AWS's
    default statement that keeps the key manageable through the account's IAM policies.
    """
    return document(
        [
            {
                "Sid": "AccountAdministersTheKeyThroughIAM",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "CloudWatchAlarmsUseTheKey",
                "Effect": "Allow",
                "Principal": {"Service": CLOUDWATCH_SERVICE},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": "*",
            },
        ]
    )
