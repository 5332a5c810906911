"""EventBridge Scheduler: a schedule per function, in its own group, with retries, a DLQ and its own role.

The role trusts scheduler.amazonaws.com only for this account (``aws:SourceAccount``) and only for the
function's own schedule group (``aws:SourceArn``). AWS documents the schedule *group* ARN as the value
Scheduler sends and warns not to scope ``aws:SourceArn`` to a schedule or a schedule name prefix
(EventBridge Scheduler User Guide, "Confused deputy prevention"); a dedicated group per function makes
the group ARN as narrow as one schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import policies

SCHEDULER_SERVICE = "scheduler.amazonaws.com"
SCHEDULE_RETRY_ATTEMPTS = 2
SCHEDULE_MAX_EVENT_AGE_SECONDS = 3600


@dataclass(frozen=True)
class ScheduleSpec:
    name: str  # physical schedule name
    expression: str
    timezone: str
    description: str
    payload: str = "{}"  # both handlers take an empty event on their scheduled runs


def scheduler_role_policy(function_arn: str, dlq_arn: str) -> dict:
    """The scheduler may invoke exactly its target and write exactly its dead-letter queue."""
    return policies.document([policies.invoke_function(function_arn), policies.send_to_queue(dlq_arn)])


def create_schedule(
    name: str,
    *,
    spec: ScheduleSpec,
    role_name: str,
    function_arn: pulumi.Output[str],
    dlq_arn: pulumi.Output[str],
    account_id: pulumi.Input[str],
    parent: pulumi.Resource,
) -> aws.scheduler.Schedule:
    child = pulumi.ResourceOptions(parent=parent)
    group = aws.scheduler.ScheduleGroup(
        f"{name}-schedule-group", name=spec.name, opts=child
    )  # one group per schedule
    role = aws.iam.Role(
        f"{name}-scheduler-role",
        name=role_name,
        assume_role_policy=pulumi.Output.all(account_id, group.arn).apply(
            lambda parts: policies.to_json(
                policies.assume_role(SCHEDULER_SERVICE, source_account=parts[0], source_arn=parts[1])
            )
        ),
        opts=child,
    )
    role_policy = aws.iam.RolePolicy(
        f"{name}-scheduler-policy",
        role=role.id,
        policy=pulumi.Output.all(function_arn, dlq_arn).apply(
            lambda arns: policies.to_json(scheduler_role_policy(arns[0], arns[1]))
        ),
        opts=child,
    )
    return aws.scheduler.Schedule(
        f"{name}-schedule",
        name=spec.name,
        group_name=group.name,
        description=spec.description,
        schedule_expression=spec.expression,
        schedule_expression_timezone=spec.timezone,
        flexible_time_window={"mode": "OFF"},
        state="ENABLED",
        target={
            "arn": function_arn,
            "role_arn": role.arn,
            "input": spec.payload,
            "retry_policy": {
                "maximum_retry_attempts": SCHEDULE_RETRY_ATTEMPTS,
                "maximum_event_age_in_seconds": SCHEDULE_MAX_EVENT_AGE_SECONDS,
            },
            "dead_letter_config": {"arn": dlq_arn},
        },
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[role_policy]),
    )
