"""The shared data bucket: one per stack (or an existing one adopted by name), hardened, plus the universe."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from components import policies
from components.naming import physical_name

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
                bucket_prefix=physical_name("stock-pipeline-data", stack, max_length=36) + "-",
                force_destroy=False,
                tags={"project": "stock-pipeline", "stack": stack},
                opts=child,
            )
            self.bucket_name = bucket.bucket
            self.bucket_arn = bucket.arn

        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=self.bucket_name,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=self.bucket_name,
            versioning_configuration={"status": "Enabled"},
            opts=child,
        )
        encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=self.bucket_name,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"},
                    "bucket_key_enabled": True,
                }
            ],
            opts=child,
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=self.bucket_name,
            policy=self.bucket_arn.apply(lambda arn: policies.to_json(policies.tls_only_bucket_policy(arn))),
            # The public-access block must exist first or S3 may evaluate the policy against the old state.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access]),
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
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning, encryption]),
        )
        self.register_outputs({"bucket_name": self.bucket_name, "bucket_arn": self.bucket_arn})
