"""`stock-pipeline:lambdas:BackfillOrchestrator`: hourly, plans backfill chunks and invokes the scraper.

No ``from __future__ import annotations``: Pulumi's component analyzer reads the output annotations.
"""

from dataclasses import dataclass

import pulumi

from components import policies
from components.pipeline_function import FunctionSpec, PipelineFunction, SharedInfra, base_environment
from stockpipe.backfill.settings import BackfillSettings

COMPONENT_TYPE = "stock-pipeline:lambdas:BackfillOrchestrator"
BASE_NAME = "tiingo-backfill-orchestrator"
FOLDER = "tiingo_backfill_orchestrator"


@dataclass(frozen=True)
class BackfillOrchestratorArgs:
    shared: SharedInfra
    scraper_function_name: pulumi.Input[str]
    """The function the orchestrator invokes once per backfill chunk."""
    scraper_function_arn: pulumi.Input[str]
    """Its ARN: the only function the orchestrator's role may invoke."""


def orchestrator_environment(
    shared: SharedInfra, scraper_function_name: pulumi.Input[str]
) -> dict[str, pulumi.Input[str]]:
    """The handler's contract (backfill_orchestrator.lambda_handler), written by the class it reads."""
    settings = shared.settings
    # The BackfillSettings fields the stack configures (the others keep the handler's defaults).
    configured = {
        "start_date": settings.backfill_start_date,
        "chunk_months": settings.backfill_chunk_months,
        "request_budget": settings.backfill_request_budget,
        "concurrency": settings.backfill_concurrency,
        "max_attempts": settings.backfill_max_attempts,
    }
    return {
        **base_environment(shared),
        "SCRAPER_FUNCTION_NAME": scraper_function_name,
        **BackfillSettings(**configured).to_env(configured),
    }


def orchestrator_spec(args: BackfillOrchestratorArgs) -> FunctionSpec:
    shared, settings = args.shared, args.shared.settings
    statements = pulumi.Output.all(shared.bucket_arn, shared.secret_arn, args.scraper_function_arn).apply(
        lambda arns: [
            *policies.orchestrator_s3(arns[0]),
            policies.read_secret(arns[1]),
            policies.invoke_function(arns[2], sid="InvokeScraper"),
        ]
    )
    return FunctionSpec(
        base_name=BASE_NAME,
        folder=FOLDER,
        description="Hourly backfill: plans history chunks in the Tiingo budget, runs the scraper",
        memory_mb=settings.orchestrator_memory_mb,
        timeout_seconds=settings.orchestrator_timeout_seconds,
        environment=orchestrator_environment(shared, args.scraper_function_name),
        statements=statements,
        schedule_expression=settings.orchestrator_schedule,
        schedule_description="Hourly backfill step",
        # The next hourly run resumes from backfill/progress.json; a retry would only spend quota.
        async_retry_attempts=0,
    )


class BackfillOrchestrator(PipelineFunction):
    """The hourly backfill orchestrator function and everything it owns."""

    def __init__(
        self, name: str, args: BackfillOrchestratorArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(COMPONENT_TYPE, name, orchestrator_spec(args), args.shared, opts)
