"""`stock-pipeline:lambdas:BackfillOrchestrator`: hourly, plans backfill chunks and invokes the scraper."""

from __future__ import annotations

import pulumi

from components import policies
from components.container_lambda import ContainerLambda, LambdaSpec, SharedInfra, base_environment

BASE_NAME = "tiingo-backfill-orchestrator"
FOLDER = "tiingo_backfill_orchestrator"


def orchestrator_environment(
    shared: SharedInfra, scraper_function_name: pulumi.Input[str]
) -> dict[str, pulumi.Input[str]]:
    """The handler's contract (backfill_orchestrator.lambda_handler)."""
    settings = shared.settings
    return {
        **base_environment(shared),
        "SCRAPER_FUNCTION_NAME": scraper_function_name,
        "BACKFILL_START_DATE": settings.backfill_start_date.isoformat(),
        "BACKFILL_CHUNK_MONTHS": str(settings.backfill_chunk_months),
        "BACKFILL_REQUEST_BUDGET": str(settings.backfill_request_budget),
        "BACKFILL_CONCURRENCY": str(settings.backfill_concurrency),
        "BACKFILL_MAX_ATTEMPTS": str(settings.backfill_max_attempts),
    }


class BackfillOrchestrator(pulumi.ComponentResource):
    function_name: pulumi.Output[str]
    function_arn: pulumi.Output[str]
    image_digest: pulumi.Output[str]
    schedule_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        shared: SharedInfra,
        scraper_function_name: pulumi.Output[str],
        scraper_function_arn: pulumi.Output[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("stock-pipeline:lambdas:BackfillOrchestrator", name, None, opts)
        settings = shared.settings
        statements = pulumi.Output.all(shared.bucket_arn, shared.secret_arn, scraper_function_arn).apply(
            lambda arns: [
                *policies.orchestrator_s3(arns[0]),
                policies.read_secret(arns[1]),
                policies.invoke_function(arns[2], sid="InvokeScraper"),
            ]
        )
        self.parts = ContainerLambda(
            self,
            name,
            LambdaSpec(
                base_name=BASE_NAME,
                folder=FOLDER,
                description="Hourly backfill: plans history chunks in the Tiingo budget, runs the scraper",
                memory_mb=settings.orchestrator_memory_mb,
                timeout_seconds=settings.orchestrator_timeout_seconds,
                environment=orchestrator_environment(shared, scraper_function_name),
                statements=statements,
                schedule_expression=settings.orchestrator_schedule,
                schedule_description="Hourly backfill step",
                # The next hourly run resumes from backfill/progress.json; a retry would only spend quota.
                async_retry_attempts=0,
            ),
            shared,
        )
        self.function_name = self.parts.function.name
        self.function_arn = self.parts.function_arn
        self.image_digest = self.parts.image_digest
        self.schedule_name = self.parts.schedule.name
        self.register_outputs(self.parts.outputs())
