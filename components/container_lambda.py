"""The shared building block of every pipeline Lambda, created inside (parented to) its component.

One call gives a function everything it owns: ECR repository (scan on push, immutable tags, lifecycle),
a linux/amd64 image pushed with an ECR token, the function pinned to the image *digest*, its log group,
a least-privilege role, an SQS dead-letter queue, async-invoke settings, its schedule and its alarms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from components import alarms, policies
from components.config import StackSettings
from components.image_tag import image_tag
from components.naming import physical_name
from components.schedules import ScheduleSpec, create_schedule

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Relative to the project directory (Pulumi runs the program there): no machine-specific paths in state.
BUILD_CONTEXT = "lambdas"
PLATFORM = "linux/amd64"
ARCHITECTURE = "x86_64"  # must match PLATFORM, or the function fails with "exec format error"
LAMBDA_SERVICE = "lambda.amazonaws.com"
DLQ_RETENTION_SECONDS = 14 * 24 * 3600


@dataclass(frozen=True)
class SharedInfra:
    """What every function needs from the stack-wide resources."""

    settings: StackSettings
    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    secret_arn: pulumi.Output[str]
    alarm_topic_arn: pulumi.Output[str]
    account_id: pulumi.Output[str]


def base_environment(shared: SharedInfra) -> dict[str, pulumi.Input[str]]:
    """What every handler reads: the bucket, the token's secret, Tiingo's address and quota, log level."""
    settings = shared.settings
    env: dict[str, pulumi.Input[str]] = {
        "DATA_BUCKET": shared.bucket_name,
        "TIINGO_SECRET_ARN": shared.secret_arn,
        "TIINGO_REQUESTS_PER_HOUR": str(settings.tiingo_requests_per_hour),
        "TIINGO_TOKEN_MAX_AGE_MINUTES": str(settings.tiingo_token_max_age_minutes),
        "LOG_LEVEL": settings.log_level,
    }
    if settings.tiingo_base_url:
        env["TIINGO_BASE_URL"] = settings.tiingo_base_url
    return env


@dataclass(frozen=True)
class LambdaSpec:
    base_name: str  # kebab-case, e.g. "tiingo-price-scraper"
    folder: str  # the Lambda's folder under lambdas/, holding its Dockerfile
    description: str
    memory_mb: int
    timeout_seconds: int
    environment: Mapping[str, pulumi.Input[str]]
    # Statements beyond logs + dead-letter queue (S3, secret, invoke); an Output because ARNs are.
    statements: pulumi.Input[list[dict[str, Any]]]
    schedule_expression: str
    schedule_description: str
    async_retry_attempts: int
    async_max_event_age_seconds: int = 3600
    reserved_concurrency: int = -1  # -1 = unreserved
    extra_tags: Mapping[str, str] = field(default_factory=dict)


class ContainerLambda:
    """The resources of one function (not itself a resource: its children belong to the caller)."""

    def __init__(
        self, parent: pulumi.ComponentResource, name: str, spec: LambdaSpec, shared: SharedInfra
    ) -> None:
        settings = shared.settings
        stack = pulumi.get_stack()
        child = pulumi.ResourceOptions(parent=parent)
        self.function_name = physical_name(spec.base_name, stack)
        tags = {"project": "stock-pipeline", "stack": stack, "function": spec.base_name, **spec.extra_tags}

        self.repository = aws.ecr.Repository(
            f"{name}-repo",
            name=self.function_name,
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "AES256"}],
            force_delete=True,  # images are rebuilt from source: `pulumi destroy` may drop them
            tags=tags,
            opts=child,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-repo-lifecycle",
            repository=self.repository.name,
            policy=policies.to_json(policies.ecr_lifecycle(settings.image_keep_count)),
            opts=child,
        )

        auth = aws.ecr.get_authorization_token_output(
            registry_id=self.repository.registry_id, opts=pulumi.InvokeOutputOptions(parent=parent)
        )
        self.image_tag = image_tag(PROJECT_ROOT / BUILD_CONTEXT, spec.folder)
        self.image = docker.Image(
            f"{name}-image",
            build=docker.DockerBuildArgs(
                context=BUILD_CONTEXT,
                dockerfile=f"{BUILD_CONTEXT}/{spec.folder}/Dockerfile",
                platform=PLATFORM,
            ),
            image_name=self.repository.repository_url.apply(lambda url: f"{url}:{self.image_tag}"),
            registry=docker.RegistryArgs(
                server=self.repository.repository_url.apply(lambda url: url.split("/", 1)[0]),
                username=auth.user_name,
                password=pulumi.Output.secret(auth.password),
            ),
            build_on_preview=settings.build_on_preview,
            opts=child,
        )

        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/lambda/{self.function_name}",
            retention_in_days=settings.log_retention_days,
            tags=tags,
            opts=child,
        )
        self.dlq = aws.sqs.Queue(
            f"{name}-dlq",
            name=physical_name(spec.base_name, stack, suffix="dlq", max_length=80),
            message_retention_seconds=DLQ_RETENTION_SECONDS,
            sqs_managed_sse_enabled=True,
            tags=tags,
            opts=child,
        )

        self.role = aws.iam.Role(
            f"{name}-role",
            name=physical_name(spec.base_name, stack, suffix="role", max_length=64),
            assume_role_policy=shared.account_id.apply(
                lambda account: policies.to_json(policies.assume_role(LAMBDA_SERVICE, source_account=account))
            ),
            tags=tags,
            opts=child,
        )
        role_policy = aws.iam.RolePolicy(
            f"{name}-role-policy",
            role=self.role.id,
            policy=pulumi.Output.all(spec.statements, self.log_group.arn, self.dlq.arn).apply(
                lambda parts: policies.to_json(
                    policies.document(
                        [*parts[0], policies.write_logs(parts[1]), policies.send_to_queue(parts[2])]
                    )
                )
            ),
            opts=child,
        )

        self.function = aws.lambda_.Function(
            f"{name}-function",
            name=self.function_name,
            description=spec.description,
            package_type="Image",
            # The digest, never the tag: the function changes exactly when the image content does.
            image_uri=self.image.repo_digest,
            architectures=[ARCHITECTURE],
            role=self.role.arn,
            memory_size=spec.memory_mb,
            timeout=spec.timeout_seconds,
            reserved_concurrent_executions=spec.reserved_concurrency,
            environment={"variables": dict(spec.environment)},
            logging_config={"log_format": "Text", "log_group": self.log_group.name},
            tags=tags,
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[role_policy, self.log_group]),
        )
        aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-async",
            function_name=self.function.name,
            maximum_retry_attempts=spec.async_retry_attempts,
            maximum_event_age_in_seconds=spec.async_max_event_age_seconds,
            destination_config={"on_failure": {"destination": self.dlq.arn}},
            opts=child,
        )

        self.schedule = create_schedule(
            name,
            spec=ScheduleSpec(
                name=physical_name(spec.base_name, stack, suffix="schedule", max_length=64),
                expression=spec.schedule_expression,
                timezone=settings.schedule_timezone,
                description=spec.schedule_description,
            ),
            role_name=physical_name(spec.base_name, stack, suffix="scheduler", max_length=64),
            function_arn=self.function.arn,
            dlq_arn=self.dlq.arn,
            account_id=shared.account_id,
            parent=parent,
        )

        alarms.function_errors_alarm(
            f"{name}-errors-alarm",
            function_name=self.function.name,
            alarm_name=physical_name(spec.base_name, stack, suffix="errors", max_length=255),
            topic_arn=shared.alarm_topic_arn,
            parent=parent,
        )
        alarms.queue_depth_alarm(
            f"{name}-dlq-alarm",
            queue_name=self.dlq.name,
            alarm_name=physical_name(spec.base_name, stack, suffix="dlq-depth", max_length=255),
            topic_arn=shared.alarm_topic_arn,
            parent=parent,
        )

        self.function_arn = self.function.arn
        self.image_digest = self.image.repo_digest

    def outputs(self) -> dict[str, pulumi.Output[Any]]:
        return {
            "function_name": self.function.name,
            "function_arn": self.function.arn,
            "image_digest": self.image.repo_digest,
            "repository_url": self.repository.repository_url,
            "schedule_name": self.schedule.name,
            "dead_letter_queue_url": self.dlq.url,
            "log_group_name": self.log_group.name,
        }
