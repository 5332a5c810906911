"""The three controls every bucket of the stack carries: no public access, default encryption, TLS only.

One place for them, so the data bucket and the Athena results bucket cannot drift apart (the policy
pack's ``s3-buckets-hardened`` requires all three on every bucket; Security Hub S3.1/S3.8, S3.5). The
TLS-only policy waits for the public-access block: S3 may otherwise judge the new policy against the
bucket's old public-access state.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import policies


@dataclass(frozen=True)
class BucketControls:
    public_access: aws.s3.BucketPublicAccessBlock
    encryption: aws.s3.BucketServerSideEncryptionConfiguration
    tls_only: aws.s3.BucketPolicy


def bucket_controls(
    name: str, *, bucket: pulumi.Input[str], bucket_arn: pulumi.Input[str], parent: pulumi.Resource
) -> BucketControls:
    """``<name>-public-access``, ``<name>-encryption`` (SSE-S3, bucket key) and ``<name>-tls-only``."""
    public_access = aws.s3.BucketPublicAccessBlock(
        f"{name}-public-access",
        bucket=bucket,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    encryption = aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-encryption",
        bucket=bucket,
        rules=[
            {
                "apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"},
                "bucket_key_enabled": True,
            }
        ],
        opts=pulumi.ResourceOptions(parent=parent),
    )
    tls_only = aws.s3.BucketPolicy(
        f"{name}-tls-only",
        bucket=bucket,
        policy=pulumi.Output.from_input(bucket_arn).apply(
            lambda arn: policies.to_json(policies.tls_only_bucket_policy(arn))
        ),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[public_access]),
    )
    return BucketControls(public_access, encryption, tls_only)
