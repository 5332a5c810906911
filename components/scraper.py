"""`stock-pipeline:lambdas:PriceScraper`: the daily scrape, plus the freshness alarm on its RowsWritten."""

from __future__ import annotations

import pulumi

from components import alarms, policies
from components.container_lambda import ContainerLambda, LambdaSpec, SharedInfra, base_environment
from components.naming import physical_name

BASE_NAME = "tiingo-price-scraper"
FOLDER = "tiingo_price_scraper"


def scraper_environment(shared: SharedInfra) -> dict[str, pulumi.Input[str]]:
    """The handler's contract (lambda_function.lambda_handler); values are strings as Lambda requires."""
    settings = shared.settings
    return {
        **base_environment(shared),
        "SCRAPER_CONCURRENCY": str(settings.scraper_concurrency),
        "LOOKBACK_DAYS": str(settings.lookback_days),
    }


class PriceScraper(pulumi.ComponentResource):
    function_name: pulumi.Output[str]
    function_arn: pulumi.Output[str]
    image_digest: pulumi.Output[str]
    schedule_name: pulumi.Output[str]

    def __init__(self, name: str, *, shared: SharedInfra, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("stock-pipeline:lambdas:PriceScraper", name, None, opts)
        settings = shared.settings
        statements = pulumi.Output.all(shared.bucket_arn, shared.secret_arn).apply(
            lambda arns: [*policies.scraper_s3(arns[0]), policies.read_secret(arns[1])]
        )
        self.parts = ContainerLambda(
            self,
            name,
            LambdaSpec(
                base_name=BASE_NAME,
                folder=FOLDER,
                description="Daily Tiingo end-of-day prices into s3://<bucket>/prices/daily/",
                memory_mb=settings.scraper_memory_mb,
                timeout_seconds=settings.scraper_timeout_seconds,
                environment=scraper_environment(shared),
                statements=statements,
                schedule_expression=settings.scraper_schedule,
                schedule_description="Daily scrape after the US close",
                # One more try for a transient failure; the upsert makes a repeat harmless.
                async_retry_attempts=1,
                # The quota guard: a backfill fan-out can never run more scrapers than this at once.
                reserved_concurrency=settings.scraper_reserved_concurrency,
            ),
            shared,
        )
        alarms.freshness_alarm(
            f"{name}-freshness-alarm",
            function_name=self.parts.function.name,
            alarm_name=physical_name(BASE_NAME, pulumi.get_stack(), suffix="no-rows-written", max_length=255),
            topic_arn=shared.alarm_topic_arn,
            schedule=settings.scraper_schedule,
            timezone=settings.schedule_timezone,
            parent=self,
        )
        self.function_name = self.parts.function.name
        self.function_arn = self.parts.function_arn
        self.image_digest = self.parts.image_digest
        self.schedule_name = self.parts.schedule.name
        self.register_outputs(self.parts.outputs())
