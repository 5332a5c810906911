"""The deploy hardening, each rule as AWS documents it, checked on the real program under mocks.

- Alarm topic: only this account's CloudWatch alarms may publish (re:Post knowledge center
  "cloudwatch-receive-sns-for-alarm-trigger": Principal cloudwatch.amazonaws.com, aws:SourceArn of the
  alarms); encrypted with a customer managed key, because CloudWatch alarms cannot use the AWS managed
  alias/aws/sns ("cloudwatch-configure-alarm-sns": the key policy must grant CloudWatch kms:Decrypt and
  kms:GenerateDataKey).
- Scheduler trust: aws:SourceArn is the schedule *group* ARN, never a schedule (EventBridge Scheduler
  User Guide, "Confused deputy prevention").
- Adopted buckets: lifecycle rules only under the pipeline's prefixes.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest

from components import policies
from components.data_bucket import DataBucket
from stockpipe import layout
from tests.infra.conftest import ACCOUNT, REGION, ProgramRun, run_with_mocks

CLOUDWATCH = "cloudwatch.amazonaws.com"
ALARM_ARN = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:tiingo-price-scraper-errors-dev"


def _values(value: Any) -> list[str]:
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def _condition_holds(condition: dict[str, dict[str, Any]], context: dict[str, str]) -> bool:
    """The IAM operators these policies use, with IAM's rule for a key missing from the request."""
    for operator, tests in condition.items():
        for key, expected in tests.items():
            actual = context.get(key)
            if operator == "StringNotEquals":
                holds = actual is None or actual not in _values(expected)  # negated: a missing key matches
            elif operator in ("StringEquals", "ArnEquals", "Bool"):
                holds = actual in _values(expected)
            elif operator == "ArnLike":
                holds = actual is not None and any(fnmatch.fnmatchcase(actual, p) for p in _values(expected))
            else:
                raise AssertionError(f"operator {operator} not modelled")
            if not holds:
                return False
    return True


def decide(doc: dict[str, Any], principal: dict[str, str], context: dict[str, str]) -> str:
    """Explicit deny > allow > implicit deny, over one resource policy and one sns:Publish request."""
    verdicts = set()
    for statement in doc["Statement"]:
        who = statement["Principal"]
        matches = who == "*" or any(principal.get(kind) in _values(ids) for kind, ids in who.items())
        if matches and _condition_holds(statement.get("Condition", {}), context):
            verdicts.add(statement["Effect"])
    return "Deny" if "Deny" in verdicts else "Allow" if "Allow" in verdicts else "implicit deny"


@pytest.fixture(scope="module")
def topic_policy(dev_run: ProgramRun) -> dict[str, Any]:
    (record,) = dev_run.of_type("aws:sns/topicPolicy:TopicPolicy")
    (topic,) = dev_run.of_type("aws:sns/topic:Topic")
    assert record.plain["arn"] == topic.outputs["arn"]
    return json.loads(record.plain["policy"])


@pytest.mark.parametrize(
    ("principal", "context", "expected"),
    [
        ({"Service": CLOUDWATCH}, {"aws:SourceArn": ALARM_ARN, "aws:SourceAccount": ACCOUNT}, "Allow"),
        (
            {"Service": CLOUDWATCH},
            {
                "aws:SourceArn": ALARM_ARN.replace(ACCOUNT, "210987654321"),
                "aws:SourceAccount": "210987654321",
            },
            "implicit deny",
        ),
        ({"AWS": f"arn:aws:iam::{ACCOUNT}:user/ops"}, {}, "Deny"),
        ({"AWS": f"arn:aws:iam::{ACCOUNT}:role/tiingo-price-scraper-role-dev"}, {}, "Deny"),
        ({"Service": "events.amazonaws.com"}, {"aws:SourceAccount": ACCOUNT}, "implicit deny"),
    ],
    ids=[
        "this-accounts-alarm",
        "another-accounts-alarm",
        "a-user-of-the-account",
        "a-role",
        "another-service",
    ],
)
def test_only_this_accounts_cloudwatch_alarms_may_publish(topic_policy, principal, context, expected):
    # aws:PrincipalIsAWSService is in every signed request: true for a service principal calling directly.
    context = {"aws:PrincipalIsAWSService": "true" if "Service" in principal else "false", **context}
    assert decide(topic_policy, principal, context) == expected


def test_the_topic_is_encrypted_with_a_key_cloudwatch_may_use(dev_run):
    (topic,) = dev_run.of_type("aws:sns/topic:Topic")
    (key,) = dev_run.of_type("aws:kms/key:Key")
    assert topic.plain["kmsMasterKeyId"] == key.outputs["arn"]
    assert "alias/aws/sns" not in json.dumps(topic.plain)  # unusable by alarms
    assert key.plain["enableKeyRotation"] is True
    statements = json.loads(key.plain["policy"])["Statement"]
    (cloudwatch,) = [s for s in statements if s["Principal"] == {"Service": CLOUDWATCH}]
    assert sorted(cloudwatch["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    (admin,) = [s for s in statements if "AWS" in s["Principal"]]
    assert admin["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}  # the key never locks its owner out


def test_scheduler_trust_names_the_schedule_group_not_a_schedule(dev_run):
    groups = {g.outputs["arn"]: g for g in dev_run.of_type("aws:scheduler/scheduleGroup:ScheduleGroup")}
    schedules = dev_run.of_type("aws:scheduler/schedule:Schedule")
    roles = {r.outputs["arn"]: r for r in dev_run.of_type("aws:iam/role:Role")}
    assert len(groups) == len(schedules) == 2
    for schedule in schedules:
        role = roles[schedule.plain["target"]["roleArn"]]
        (statement,) = json.loads(role.plain["assumeRolePolicy"])["Statement"]
        source_arn = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
        assert ":schedule-group/" in source_arn
        assert groups[source_arn].outputs["name"] == schedule.plain["groupName"]
        assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}


def test_every_service_trust_names_the_account(dev_run):
    for role in dev_run.of_type("aws:iam/role:Role"):
        (statement,) = json.loads(role.plain["assumeRolePolicy"])["Statement"]
        assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}


def test_an_adopted_buckets_lifecycle_touches_only_the_pipelines_prefixes():
    run = run_with_mocks(
        lambda: DataBucket("data", tickers=["AAPL"], existing_bucket="shared-bucket"), config={}
    )
    (lifecycle,) = run.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    rules = lifecycle.plain["rules"]
    prefixes = [rule["filter"]["prefix"] for rule in rules]
    assert prefixes == ["prices/", "config/", "backfill/"]
    assert all(rule["noncurrentVersionExpiration"] == {"noncurrentDays": 30} for rule in rules)

    def expires(key: str) -> bool:
        return any(key.startswith(prefix) for prefix in prefixes)

    for key in (
        layout.price_key("AAPL", 2024),
        layout.UNIVERSE_KEY,
        layout.PROGRESS_KEY,
        layout.BACKFILL_INDEX_KEY,
        layout.shard_key("3f"),
        layout.ticker_progress_key("AAPL"),
    ):
        assert expires(key), key  # every object the pipeline writes is covered
    for key in ("reports/2024.csv", "pricesheet.xlsx", "athena-results/q.csv", ""):
        assert not expires(key), key  # nothing else is


def test_the_orchestrator_may_write_exactly_its_progress(dev_run):
    (policy,) = [
        r
        for r in dev_run.of_type("aws:iam/rolePolicy:RolePolicy")
        if r.name.startswith("tiingo-backfill") and r.name.endswith("-role-policy")
    ]
    statements = json.loads(policy.plain["policy"])["Statement"]
    writes = {r for s in statements if "s3:PutObject" in s["Action"] for r in s["Resource"]}
    assert {w.split(":::", 1)[1].split("/", 1)[1] for w in writes} == set(policies.ORCHESTRATOR_OBJECTS)
    assert policies.ORCHESTRATOR_OBJECTS == (
        layout.BACKFILL_INDEX_KEY,
        layout.BACKFILL_SHARDS_PREFIX + "*",
        layout.BACKFILL_TICKERS_PREFIX + "*",
        layout.PROGRESS_KEY,
    )
