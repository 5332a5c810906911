"""`PipelineFunction`: the component base of every pipeline Lambda, built in small named steps.

One instance owns everything its function needs, each a child (``parent=self``) with a logical name
``<component name>-<role>`` (these names make the URNs: never rename one, see tests/infra/snapshots):

=========================  ==================================================================
step                       children
=========================  ==================================================================
``_repository``            ECR repository (scan on push, immutable tags, AES256) + lifecycle
``_image``                 the linux/amd64 image, pushed with an ECR token
``_log_group``             ``/aws/lambda/<function>`` with retention
``_dead_letter_queue``     SQS queue for failed async and scheduled invocations
``_role``                  least-privilege execution role + inline policy
``_function``              the function, pinned to the image *digest*, + async-invoke settings
``_schedule``              EventBridge Scheduler schedule with its own role
``_alarms``                errors and dead-letter depth (subclasses add their own)
=========================  ==================================================================

Subclasses (`PriceScraper`, `BackfillOrchestrator`) only describe their function (a `FunctionSpec`)
and may extend ``_alarms``. Every output is declared below with a docstring and registered exactly
(`registered_outputs`), as Pulumi's component providers do; nothing else is public.

No ``from __future__ import annotations`` here: Pulumi's component analyzer reads the output
annotations at run time (tests/infra/test_pipeline_function.py uses it).
"""

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
from components.naming import (
    ALARM_NAME_MAX,
    IAM_ROLE_NAME_MAX,
    LAMBDA_NAME_MAX,
    SCHEDULE_NAME_MAX,
    SQS_QUEUE_NAME_MAX,
    physical_name,
)
from components.schedules import ScheduleSpec, create_schedule
from stockpipe.settings import (
    DEFAULT_TIINGO_BASE_URL,
    LogSettings,
    StoreSettings,
    TiingoSettings,
    TokenSettings,
)

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
    """What every handler reads: the bucket, the token's secret, Tiingo's address and quota, log level.

    Built from the handlers' own settings classes (``stockpipe.settings``: each names its variables and
    writes them with ``to_env``), so the names and the encoding of the values are defined once.
    """
    settings = shared.settings
    tiingo = TiingoSettings(
        base_url=settings.tiingo_base_url or DEFAULT_TIINGO_BASE_URL,
        requests_per_hour=settings.tiingo_requests_per_hour,
        token_max_age_minutes=settings.tiingo_token_max_age_minutes,
    )
    return {
        **StoreSettings(bucket=shared.bucket_name).to_env(),  # type: ignore[arg-type]  # an Output
        **TokenSettings(secret_arn=shared.secret_arn).to_env(),  # type: ignore[arg-type]  # an Output
        **tiingo.to_env(),
        **LogSettings(level=settings.log_level).to_env(),
    }


@dataclass(frozen=True)
class FunctionSpec:
    """What makes one pipeline function itself (everything else is the same for all of them)."""

    base_name: str
    """kebab-case, e.g. ``tiingo-price-scraper``: the physical names are ``<base_name>[-<role>]-<stack>``."""
    folder: str
    """The function's folder under lambdas/, holding its Dockerfile."""
    description: str
    memory_mb: int
    timeout_seconds: int
    environment: Mapping[str, pulumi.Input[str]]
    statements: pulumi.Input[list[dict[str, Any]]]
    """IAM statements beyond logs and the dead-letter queue (S3, secret, invoke); an Output as ARNs are."""
    schedule_expression: str
    schedule_description: str
    async_retry_attempts: int
    async_max_event_age_seconds: int = 3600
    reserved_concurrency: int = -1
    """-1 = unreserved."""
    extra_tags: Mapping[str, str] = field(default_factory=dict)


class PipelineFunction(pulumi.ComponentResource):
    """A container Lambda with its repository, image, logs, role, dead-letter queue, schedule, alarms."""

    function_name: pulumi.Output[str]
    """Physical name of the Lambda function, ``<base name>-<stack>``."""

    function_arn: pulumi.Output[str]
    """ARN of the Lambda function."""

    image_digest: pulumi.Output[str]
    """``<repository url>@sha256:<digest>``: the exact image the function runs."""

    repository_url: pulumi.Output[str]
    """URL of the function's own ECR repository (``docker pull`` / ``aws ecr describe-images``)."""

    schedule_name: pulumi.Output[str]
    """Name of the EventBridge Scheduler schedule that invokes the function."""

    dead_letter_queue_url: pulumi.Output[str]
    """URL of the SQS queue holding failed scheduled and asynchronous invocations."""

    dead_letter_queue_name: pulumi.Output[str]
    """Name of that queue (the ``QueueName`` dimension of its CloudWatch metrics)."""

    log_group_name: pulumi.Output[str]
    """CloudWatch Logs group of the function (``aws logs tail <name> --follow``)."""

    errors_alarm_arn: pulumi.Output[str]
    """ARN of the alarm on any function error in 5 minutes."""

    dead_letter_alarm_arn: pulumi.Output[str]
    """ARN of the alarm on anything waiting in the dead-letter queue."""

    def __init__(
        self,
        component_type: str,
        name: str,
        spec: FunctionSpec,
        shared: SharedInfra,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(component_type, name, None, opts)
        self._name = name
        self._spec = spec
        self._shared = shared
        self._stack = pulumi.get_stack()
        self._tags = {
            "project": "stock-pipeline",
            "stack": self._stack,
            "function": spec.base_name,
            **spec.extra_tags,
        }
        physical = physical_name(spec.base_name, self._stack, max_length=LAMBDA_NAME_MAX)

        repository = self._repository(physical)
        image = self._image(repository)
        log_group = self._log_group(physical)
        queue = self._dead_letter_queue()
        role, role_policy = self._role(log_group, queue)
        function = self._function(physical, image, role, role_policy, log_group, queue)
        schedule = self._schedule(function, queue)
        self._alarms(function, queue)

        self.function_name = function.name
        self.function_arn = function.arn
        self.image_digest = image.repo_digest
        self.repository_url = repository.repository_url
        self.schedule_name = schedule.name
        self.dead_letter_queue_url = queue.url
        self.dead_letter_queue_name = queue.name
        self.log_group_name = log_group.name
        self.register_outputs(self.registered_outputs())

    @classmethod
    def output_names(cls) -> list[str]:
        """Every declared output of the class and its bases (public annotated ``pulumi.Output``s)."""
        names: dict[str, None] = {}
        for klass in reversed(cls.__mro__):
            if issubclass(klass, PipelineFunction):
                names.update(dict.fromkeys(n for n in vars(klass).get("__annotations__", {}) if n[0] != "_"))
        return list(names)

    def registered_outputs(self) -> dict[str, pulumi.Output[Any]]:
        return {name: getattr(self, name) for name in self.output_names()}

    # --- children, one named step each ------------------------------------------------------------

    def _child(self, **kw: Any) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, **kw)

    def _physical(self, role: str, max_length: int) -> str:
        return physical_name(self._spec.base_name, self._stack, suffix=role, max_length=max_length)

    def _repository(self, physical: str) -> aws.ecr.Repository:
        repository = aws.ecr.Repository(
            f"{self._name}-repo",
            name=physical,
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "AES256"}],
            force_delete=True,  # images are rebuilt from source: `pulumi destroy` may drop them
            tags=self._tags,
            opts=self._child(),
        )
        aws.ecr.LifecyclePolicy(
            f"{self._name}-repo-lifecycle",
            repository=repository.name,
            policy=policies.to_json(policies.ecr_lifecycle(self._shared.settings.image_keep_count)),
            opts=self._child(),
        )
        return repository

    def _image(self, repository: aws.ecr.Repository) -> docker.Image:
        auth = aws.ecr.get_authorization_token_output(
            registry_id=repository.registry_id, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        tag = image_tag(PROJECT_ROOT / BUILD_CONTEXT, self._spec.folder)
        return docker.Image(
            f"{self._name}-image",
            build=docker.DockerBuildArgs(
                context=BUILD_CONTEXT,
                dockerfile=f"{BUILD_CONTEXT}/{self._spec.folder}/Dockerfile",
                platform=PLATFORM,
            ),
            image_name=repository.repository_url.apply(lambda url: f"{url}:{tag}"),
            registry=docker.RegistryArgs(
                server=repository.repository_url.apply(lambda url: url.split("/", 1)[0]),
                username=auth.user_name,
                password=pulumi.Output.secret(auth.password),
            ),
            build_on_preview=self._shared.settings.build_on_preview,
            opts=self._child(),
        )

    def _log_group(self, physical: str) -> aws.cloudwatch.LogGroup:
        return aws.cloudwatch.LogGroup(
            f"{self._name}-logs",
            name=f"/aws/lambda/{physical}",
            retention_in_days=self._shared.settings.log_retention_days,
            tags=self._tags,
            opts=self._child(),
        )

    def _dead_letter_queue(self) -> aws.sqs.Queue:
        return aws.sqs.Queue(
            f"{self._name}-dlq",
            name=self._physical("dlq", SQS_QUEUE_NAME_MAX),
            message_retention_seconds=DLQ_RETENTION_SECONDS,
            sqs_managed_sse_enabled=True,
            tags=self._tags,
            opts=self._child(),
        )

    def _role(
        self, log_group: aws.cloudwatch.LogGroup, queue: aws.sqs.Queue
    ) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
        role = aws.iam.Role(
            f"{self._name}-role",
            name=self._physical("role", IAM_ROLE_NAME_MAX),
            assume_role_policy=self._shared.account_id.apply(
                lambda account: policies.to_json(policies.assume_role(LAMBDA_SERVICE, source_account=account))
            ),
            tags=self._tags,
            opts=self._child(),
        )
        role_policy = aws.iam.RolePolicy(
            f"{self._name}-role-policy",
            role=role.id,
            policy=pulumi.Output.all(self._spec.statements, log_group.arn, queue.arn).apply(
                lambda parts: policies.to_json(
                    policies.document(
                        [*parts[0], policies.write_logs(parts[1]), policies.send_to_queue(parts[2])]
                    )
                )
            ),
            opts=self._child(),
        )
        return role, role_policy

    def _function(
        self,
        physical: str,
        image: docker.Image,
        role: aws.iam.Role,
        role_policy: aws.iam.RolePolicy,
        log_group: aws.cloudwatch.LogGroup,
        queue: aws.sqs.Queue,
    ) -> aws.lambda_.Function:
        spec = self._spec
        function = aws.lambda_.Function(
            f"{self._name}-function",
            name=physical,
            description=spec.description,
            package_type="Image",
            # The digest, never the tag: the function changes exactly when the image content does.
            image_uri=image.repo_digest,
            architectures=[ARCHITECTURE],
            role=role.arn,
            memory_size=spec.memory_mb,
            timeout=spec.timeout_seconds,
            reserved_concurrent_executions=spec.reserved_concurrency,
            environment={"variables": dict(spec.environment)},
            logging_config={"log_format": "Text", "log_group": log_group.name},
            tags=self._tags,
            opts=self._child(depends_on=[role_policy, log_group]),
        )
        aws.lambda_.FunctionEventInvokeConfig(
            f"{self._name}-async",
            function_name=function.name,
            maximum_retry_attempts=spec.async_retry_attempts,
            maximum_event_age_in_seconds=spec.async_max_event_age_seconds,
            destination_config={"on_failure": {"destination": queue.arn}},
            opts=self._child(),
        )
        return function

    def _schedule(self, function: aws.lambda_.Function, queue: aws.sqs.Queue) -> aws.scheduler.Schedule:
        settings = self._shared.settings
        return create_schedule(
            self._name,
            spec=ScheduleSpec(
                name=self._physical("schedule", SCHEDULE_NAME_MAX),
                expression=self._spec.schedule_expression,
                timezone=settings.schedule_timezone,
                description=self._spec.schedule_description,
            ),
            role_name=self._physical("scheduler", IAM_ROLE_NAME_MAX),
            function_arn=function.arn,
            dlq_arn=queue.arn,
            account_id=self._shared.account_id,
            parent=self,
        )

    def _alarms(self, function: aws.lambda_.Function, queue: aws.sqs.Queue) -> None:
        """Errors and dead-letter depth; a subclass extends this (call super) for its own alarms."""
        topic = self._shared.alarm_topic_arn
        self.errors_alarm_arn = alarms.function_errors_alarm(
            f"{self._name}-errors-alarm",
            function_name=function.name,
            alarm_name=self._physical("errors", ALARM_NAME_MAX),
            topic_arn=topic,
            parent=self,
        ).arn
        self.dead_letter_alarm_arn = alarms.queue_depth_alarm(
            f"{self._name}-dlq-alarm",
            queue_name=queue.name,
            alarm_name=self._physical("dlq-depth", ALARM_NAME_MAX),
            topic_arn=topic,
            parent=self,
        ).arn
