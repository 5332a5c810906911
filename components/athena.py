"""`stock-pipeline:analytics:AthenaWorkgroup`: where the stack's Athena queries run and their results go.

- a results bucket of its own (never the data bucket: results are disposable and their lifecycle must
  not touch the dataset): private, TLS-only, SSE-S3, results expire after ``RESULTS_RETENTION_DAYS``;
- a workgroup that *enforces* its configuration (clients cannot send results elsewhere or unencrypted),
  checks the results bucket's owner, caps the bytes one query may scan and publishes query metrics;
- the named queries of components.queries, saved in that workgroup.

No ``from __future__ import annotations``: Pulumi's component analyzer reads the output annotations.
"""

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.bucket_controls import bucket_controls
from components.naming import (
    ATHENA_NAMED_QUERY_NAME_MAX,
    ATHENA_WORKGROUP_NAME_MAX,
    bucket_prefix,
    physical_name,
)
from components.queries import named_queries

COMPONENT_TYPE = "stock-pipeline:analytics:AthenaWorkgroup"
RESULTS_PREFIX = "results/"
RESULTS_RETENTION_DAYS = 30
# A runaway query (a cross join, say) stops here instead of scanning the whole dataset repeatedly.
BYTES_SCANNED_CUTOFF_PER_QUERY = 10 * 1024**3


@dataclass(frozen=True)
class AthenaWorkgroupArgs:
    database_name: pulumi.Input[str]
    """The Glue database the named queries read (components.catalog)."""
    account_id: pulumi.Input[str]
    """This account: the workgroup refuses to write results to a bucket owned by anyone else."""
    example_tickers: tuple[str, ...]
    """The stack's tickers; the first two fill in the named queries' examples."""


class AthenaWorkgroup(pulumi.ComponentResource):
    """The workgroup, its encrypted and expiring results location, and the named queries."""

    workgroup_name: pulumi.Output[str]
    """Athena workgroup to run queries in (``aws athena start-query-execution --work-group <name>``)."""

    results_bucket_name: pulumi.Output[str]
    """Bucket holding query results under ``results/`` (expire after 30 days)."""

    named_query_ids: pulumi.Output[dict[str, str]]
    """Named query ID per query key (``aws athena get-named-query --named-query-id <id>``)."""

    def __init__(
        self, name: str, args: AthenaWorkgroupArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        self._name = name
        self._stack = pulumi.get_stack()
        bucket = self._results_bucket()
        workgroup = self._workgroup(bucket, args.account_id)
        queries = self._named_queries(workgroup, args)
        self.workgroup_name = workgroup.name
        self.results_bucket_name = bucket.bucket
        self.named_query_ids = pulumi.Output.all(**{slug: q.id for slug, q in queries.items()})
        self.register_outputs(
            {
                "workgroup_name": self.workgroup_name,
                "results_bucket_name": self.results_bucket_name,
                "named_query_ids": self.named_query_ids,
            }
        )

    def _child(self, **kw: object) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, **kw)

    def _results_bucket(self) -> aws.s3.Bucket:
        bucket = aws.s3.Bucket(
            f"{self._name}-results",
            bucket_prefix=bucket_prefix("stock-pipeline-athena", self._stack),
            force_destroy=True,  # query results only: `pulumi destroy` may empty the bucket
            tags={"project": "stock-pipeline", "stack": self._stack},
            opts=self._child(),
        )
        bucket_controls(f"{self._name}-results", bucket=bucket.bucket, bucket_arn=bucket.arn, parent=self)
        aws.s3.BucketLifecycleConfiguration(
            f"{self._name}-results-lifecycle",
            bucket=bucket.bucket,
            rules=[
                {
                    "id": "expire-query-results",
                    "status": "Enabled",
                    "filter": {"prefix": RESULTS_PREFIX},
                    "expiration": {"days": RESULTS_RETENTION_DAYS},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 1},
                }
            ],
            opts=self._child(),
        )
        return bucket

    def _workgroup(self, bucket: aws.s3.Bucket, account_id: pulumi.Input[str]) -> aws.athena.Workgroup:
        return aws.athena.Workgroup(
            f"{self._name}-workgroup",
            name=physical_name("stock-pipeline", self._stack, max_length=ATHENA_WORKGROUP_NAME_MAX),
            description="stock-pipeline price queries: encrypted, expiring results; enforced settings",
            state="ENABLED",
            force_destroy=True,  # `pulumi destroy` removes the named queries and history with it
            configuration={
                "enforce_workgroup_configuration": True,
                "publish_cloudwatch_metrics_enabled": True,
                "bytes_scanned_cutoff_per_query": BYTES_SCANNED_CUTOFF_PER_QUERY,
                "engine_version": {"selected_engine_version": "AUTO"},
                "result_configuration": {
                    "output_location": bucket.bucket.apply(lambda name: f"s3://{name}/{RESULTS_PREFIX}"),
                    "encryption_configuration": {"encryption_option": "SSE_S3"},
                    "expected_bucket_owner": account_id,
                },
            },
            tags={"project": "stock-pipeline", "stack": self._stack},
            opts=self._child(),
        )

    def _named_queries(
        self, workgroup: aws.athena.Workgroup, args: AthenaWorkgroupArgs
    ) -> dict[str, aws.athena.NamedQuery]:
        database = pulumi.Output.from_input(args.database_name)
        specs = named_queries("<database>", args.example_tickers)  # the slugs and titles only
        created = {}
        for index, spec in enumerate(specs):
            created[spec.slug] = aws.athena.NamedQuery(
                f"{self._name}-query-{spec.slug}",
                name=f"stock-pipeline: {spec.title}"[:ATHENA_NAMED_QUERY_NAME_MAX],
                description=spec.description,
                database=database,
                workgroup=workgroup.name,
                query=database.apply(lambda db, i=index: named_queries(db, args.example_tickers)[i].sql),
                opts=self._child(),
            )
        return created
