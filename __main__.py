"""stock-pipeline control plane: validate the stack config, create the components, export the outputs."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.alarms import AlarmTopic
from components.athena import AthenaWorkgroup, AthenaWorkgroupArgs
from components.catalog import PriceCatalog, PriceCatalogArgs
from components.config import read_stack_config
from components.dashboard import PipelineDashboard, PipelineDashboardArgs
from components.data_bucket import DataBucket
from components.orchestrator import BackfillOrchestrator, BackfillOrchestratorArgs
from components.pipeline_function import SharedInfra
from components.scraper import PriceScraper, PriceScraperArgs
from components.secrets import TiingoSecret

# Raises one ConfigError listing every problem before any resource exists.
settings, token = read_stack_config()

data = DataBucket("data", tickers=settings.tickers, existing_bucket=settings.bucket_name)
secret = TiingoSecret("tiingo-token", token=token)
account_id = aws.get_caller_identity_output().account_id
topic = AlarmTopic("alarms", email=settings.alarm_email, account_id=account_id)
shared = SharedInfra(
    settings=settings,
    bucket_name=data.bucket_name,
    bucket_arn=data.bucket_arn,
    secret_arn=secret.secret_arn,
    alarm_topic_arn=topic.topic_arn,
    account_id=account_id,
)
catalog = PriceCatalog("catalog", PriceCatalogArgs(bucket_name=data.bucket_name))
scraper = PriceScraper("tiingo-price-scraper", PriceScraperArgs(shared=shared, catalog=catalog.table_ref()))
orchestrator = BackfillOrchestrator(
    "tiingo-backfill-orchestrator",
    BackfillOrchestratorArgs(
        shared=shared,
        scraper_function_name=scraper.function_name,
        scraper_function_arn=scraper.function_arn,
    ),
)
athena = AthenaWorkgroup(
    "athena",
    AthenaWorkgroupArgs(
        database_name=catalog.database_name, account_id=shared.account_id, example_tickers=settings.tickers
    ),
)
dashboard = PipelineDashboard(
    "dashboard",
    PipelineDashboardArgs(
        scraper=scraper,
        orchestrator=orchestrator,
        alarm_arns=[
            scraper.freshness_alarm_arn,
            scraper.errors_alarm_arn,
            scraper.dead_letter_alarm_arn,
            orchestrator.errors_alarm_arn,
            orchestrator.dead_letter_alarm_arn,
        ],
        requests_per_hour=settings.tiingo_requests_per_hour,
    ),
)

pulumi.export("bucketName", data.bucket_name)
pulumi.export("tiingoSecretArn", secret.secret_arn)
pulumi.export("alarmTopicArn", topic.topic_arn)
for prefix, function in (("scraper", scraper), ("orchestrator", orchestrator)):
    pulumi.export(f"{prefix}FunctionName", function.function_name)
    pulumi.export(f"{prefix}FunctionArn", function.function_arn)
    pulumi.export(f"{prefix}ImageDigest", function.image_digest)
    pulumi.export(f"{prefix}ScheduleName", function.schedule_name)
    pulumi.export(f"{prefix}RepositoryUrl", function.repository_url)
    pulumi.export(f"{prefix}LogGroupName", function.log_group_name)
    pulumi.export(f"{prefix}DeadLetterQueueUrl", function.dead_letter_queue_url)
pulumi.export("glueDatabase", catalog.database_name)
pulumi.export("glueTable", pulumi.Output.concat(catalog.database_name, ".", catalog.table_name))
pulumi.export("athenaWorkgroup", athena.workgroup_name)
pulumi.export("athenaResultsBucket", athena.results_bucket_name)
pulumi.export("athenaNamedQueries", athena.named_query_ids)
pulumi.export("dashboardName", dashboard.dashboard_name)
pulumi.export("dashboardUrl", dashboard.dashboard_url)
