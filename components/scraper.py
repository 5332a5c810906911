"""`stock-pipeline:lambdas:PriceScraper`: the daily scrape, plus the freshness alarm on what it stores.

No ``from __future__ import annotations``: Pulumi's component analyzer reads the output annotations.
"""

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import alarms, policies
from components.catalog import GlueTableRef, register_partitions_statement
from components.naming import ALARM_NAME_MAX
from components.pipeline_function import FunctionSpec, PipelineFunction, SharedInfra, base_environment
from stockpipe import partitions
from stockpipe.settings import ScraperSettings

COMPONENT_TYPE = "stock-pipeline:lambdas:PriceScraper"
BASE_NAME = "tiingo-price-scraper"
FOLDER = "tiingo_price_scraper"


@dataclass(frozen=True)
class PriceScraperArgs:
    shared: SharedInfra
    catalog: GlueTableRef
    """The Glue table the scraper registers each new ticker-year in (stockpipe.partitions)."""


def scraper_environment(shared: SharedInfra, catalog: GlueTableRef) -> dict[str, pulumi.Input[str]]:
    """The handler's contract (lambda_function.lambda_handler), from the settings classes it reads."""
    settings = shared.settings
    scraper = ScraperSettings(concurrency=settings.scraper_concurrency, lookback_days=settings.lookback_days)
    glue = partitions.CatalogTarget(catalog.database_name, catalog.table_name)  # type: ignore[arg-type]
    return {**base_environment(shared), **scraper.to_env(), **glue.to_env()}


def scraper_spec(args: PriceScraperArgs) -> FunctionSpec:
    shared, settings, glue = args.shared, args.shared.settings, args.catalog
    statements = pulumi.Output.all(
        shared.bucket_arn, shared.secret_arn, glue.catalog_arn, glue.database_arn, glue.table_arn
    ).apply(
        lambda arns: [
            *policies.scraper_s3(arns[0]),
            policies.read_secret(arns[1]),
            register_partitions_statement(*arns[2:]),
        ]
    )
    return FunctionSpec(
        base_name=BASE_NAME,
        folder=FOLDER,
        description="Daily Tiingo end-of-day prices into s3://<bucket>/prices/daily/",
        memory_mb=settings.scraper_memory_mb,
        timeout_seconds=settings.scraper_timeout_seconds,
        environment=scraper_environment(shared, glue),
        statements=statements,
        schedule_expression=settings.scraper_schedule,
        schedule_description="Daily scrape after the US close",
        # One more try for a transient failure; the upsert makes a repeat harmless.
        async_retry_attempts=1,
        # The quota guard: a backfill fan-out can never run more scrapers than this at once.
        reserved_concurrency=settings.scraper_reserved_concurrency,
    )


class PriceScraper(PipelineFunction):
    """The daily scraper function and everything it owns, plus the data-freshness alarm."""

    freshness_alarm_arn: pulumi.Output[str]
    """ARN of the alarm that fires when the stored data falls behind the trading calendar."""

    def __init__(self, name: str, args: PriceScraperArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(COMPONENT_TYPE, name, scraper_spec(args), args.shared, opts)

    def _alarms(self, function: aws.lambda_.Function, queue: aws.sqs.Queue) -> None:
        super()._alarms(function, queue)
        settings = self._shared.settings
        self.freshness_alarm_arn = alarms.trading_days_behind_alarm(
            f"{self._name}-freshness-alarm",
            function_name=function.name,
            alarm_name=self._physical("trading-days-behind", ALARM_NAME_MAX),
            topic_arn=self._shared.alarm_topic_arn,
            schedule=settings.scraper_schedule,
            timezone=settings.schedule_timezone,
            parent=self,
        ).arn
