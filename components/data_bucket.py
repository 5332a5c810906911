"""The shared data bucket: one per stack (or an existing one adopted by name), hardened, plus the universe."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from components import policies
from components.bucket_controls import bucket_controls
from components.naming import bucket_prefix

NONCURRENT_VERSION_DAYS = 30
ABORT_UPLOAD_DAYS = 7


def lifecycle_rules(prefixes: Sequence[str] = policies.PIPELINE_PREFIXES) -> list[dict]:
    """One rule per pipeline prefix: old versions expire after 30 days, stalled uploads after 7.

    Scoped by prefix, never bucket-wide, so the rules never touch data outside the pipeline's prefixes
    (an adopted bucket's other objects keep all their versions).
    """
    return [
        {
            "id": f"stock-pipeline-{prefix.rstrip('/')}",
            "status": "Enabled",
            "filter": {"prefix": prefix},
            "noncurrent_version_expiration": {"noncurrent_days": NONCURRENT_VERSION_DAYS},
            "abort_incomplete_multipart_upload": {"days_after_initiation": ABORT_UPLOAD_DAYS},
        }
        for prefix in prefixes
    ]


class DataBucket(pulumi.ComponentResource):
    """Versioned, SSE-encrypted, never public, TLS-only; ``config/universe.json`` from the stack's tickers.

    With ``existing_bucket`` the same hardening is applied to that bucket. S3 keeps one of each of these
    per bucket, so adoption makes this stack the owner of the bucket's policy, public-access block,
    default encryption, versioning (Enabled, bucket-wide: S3 cannot version a prefix) and lifecycle
    configuration; the lifecycle rules themselves act only on the pipeline's prefixes.
    """

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        tickers: Sequence[str],
        existing_bucket: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("stock-pipeline:storage:DataBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        stack = pulumi.get_stack()

        if existing_bucket:
            found = aws.s3.get_bucket_output(
                bucket=existing_bucket, opts=pulumi.InvokeOutputOptions(parent=self)
            )
            self.bucket_name = pulumi.Output.from_input(existing_bucket)
            self.bucket_arn = found.arn
        else:
            bucket = aws.s3.Bucket(
                f"{name}-bucket",
                # A prefix, not a fixed name: bucket names are global, several accounts may run this stack.
                bucket_prefix=bucket_prefix("stock-pipeline-data", stack),
                force_destroy=False,
                tags={"project": "stock-pipeline", "stack": stack},
                opts=child,
            )
            self.bucket_name = bucket.bucket
            self.bucket_arn = bucket.arn

        controls = bucket_controls(name, bucket=self.bucket_name, bucket_arn=self.bucket_arn, parent=self)
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=self.bucket_name,
            versioning_configuration={"status": "Enabled"},
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=self.bucket_name,
            rules=lifecycle_rules(),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        self.universe = aws.s3.BucketObjectv2(
            f"{name}-universe",
            bucket=self.bucket_name,
            key=policies.UNIVERSE_KEY,
            content=json.dumps(list(tickers)),
            content_type="application/json",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning, controls.encryption]),
        )
        self.register_outputs({"bucket_name": self.bucket_name, "bucket_arn": self.bucket_arn})
