"""The stock-pipeline policies as plain functions (unit-testable without starting a policy server).

Resource checks take ``(args, report_violation)`` like pulumi-policy's ResourceValidation; stack checks
take ``(args, report_violation)`` with ``args.resources``. Property names are the engine's (camelCase).
Values unknown during a preview (computed later) are skipped, never reported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs, StackValidationArgs

# The engine's marker for a value that is only known after the update.
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

BUCKET = "aws:s3/bucket:Bucket"
BUCKET_V2 = "aws:s3/bucketV2:BucketV2"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
BUCKET_SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
ECR_REPOSITORY = "aws:ecr/repository:Repository"
ECR_LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"
LAMBDA_FUNCTION = "aws:lambda/function:Function"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
IAM_POLICY_TYPES = frozenset(
    {
        "aws:iam/rolePolicy:RolePolicy",
        "aws:iam/policy:Policy",
        "aws:iam/userPolicy:UserPolicy",
        "aws:iam/groupPolicy:GroupPolicy",
    }
)
PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
_DIGEST_URI = re.compile(r"[^@\s]+@sha256:[0-9a-f]{64}")
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|PRIVATE_?KEY|CREDENTIAL", re.IGNORECASE)
# Values that are references to a secret, not the secret itself.
_REFERENCE_VALUE = re.compile(r"arn:aws[a-z-]*:(secretsmanager|ssm|kms):\S+")


def is_unknown(value: Any) -> bool:
    return value is None or value == UNKNOWN


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _document(value: Any) -> dict[str, Any] | None:
    """A policy document given as JSON text or as an object; None when unknown or unparsable."""
    if is_unknown(value):
        return None
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return None
    return parsed if isinstance(parsed, dict) else None


# --- S3 (Security Hub S3.1 / S3.8 public access, S3.5 TLS, SSE) -------------------------------------


def s3_public_access_block(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """All four public-access blocks on."""
    if args.resource_type != PUBLIC_ACCESS_BLOCK:
        return
    off = [flag for flag in PUBLIC_ACCESS_FLAGS if args.props.get(flag) is not True]
    if off:
        report_violation(f"public access must be blocked: set {', '.join(off)} to true (S3.1/S3.8)", None)


def denies_insecure_transport(doc: dict[str, Any]) -> bool:
    for statement in _as_list(doc.get("Statement")):
        if not isinstance(statement, dict) or statement.get("Effect") != "Deny":
            continue
        actions = _as_list(statement.get("Action"))
        condition = statement.get("Condition", {}).get("Bool", {})
        if {"s3:*", "*"} & set(actions) and str(condition.get("aws:SecureTransport")).lower() == "false":
            return True
    return False


def s3_tls_only(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """The bucket policy denies every request without TLS."""
    if args.resource_type != BUCKET_POLICY or is_unknown(args.props.get("policy")):
        return
    doc = _document(args.props.get("policy"))
    if doc is None or not denies_insecure_transport(doc):
        report_violation("the bucket policy must deny requests with aws:SecureTransport = false (S3.5)", None)


def s3_encryption(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Default encryption with SSE-S3 or SSE-KMS."""
    if args.resource_type != BUCKET_SSE:
        return
    algorithms = [
        (rule.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm")
        for rule in _as_list(args.props.get("rules"))
        if isinstance(rule, dict)
    ]
    if not any(algorithm in ("AES256", "aws:kms", "aws:kms:dsse") for algorithm in algorithms):
        report_violation("the bucket needs default encryption (sseAlgorithm AES256 or aws:kms)", None)


def _targets(resource: Any, prop: str) -> set[str]:
    """What a resource's ``prop`` points at: its value and the URNs it depends on for that property."""
    found = {str(resource.props.get(prop))} if not is_unknown(resource.props.get(prop)) else set()
    for dependency in (getattr(resource, "property_dependencies", None) or {}).get(prop, []):
        found.add(dependency.urn)
    return found


def s3_buckets_hardened(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every bucket of the stack has a public-access block, a TLS-only policy and default encryption."""
    buckets = [r for r in args.resources if r.resource_type in (BUCKET, BUCKET_V2)]
    companions = {
        "no public-access block (S3.1/S3.8)": PUBLIC_ACCESS_BLOCK,
        "no bucket policy (S3.5 needs a TLS-only one)": BUCKET_POLICY,
        "no default encryption": BUCKET_SSE,
    }
    for bucket in buckets:
        identities = {bucket.urn} | (
            {str(bucket.props["bucket"])} if not is_unknown(bucket.props.get("bucket")) else set()
        )
        for what, typ in companions.items():
            if not any(identities & _targets(r, "bucket") for r in args.resources if r.resource_type == typ):
                report_violation(f"bucket {bucket.name} has {what}", bucket.urn)


# --- ECR (ECR.1 scan on push, ECR.2 immutable tags, ECR.3 lifecycle) --------------------------------


def ecr_repository(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != ECR_REPOSITORY:
        return
    scanning = args.props.get("imageScanningConfiguration") or {}
    if scanning.get("scanOnPush") is not True:
        report_violation("ECR repositories must scan images on push (ECR.1)", None)
    if args.props.get("imageTagMutability") not in ("IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION"):
        report_violation("ECR repositories must use immutable tags (ECR.2)", None)


def ecr_lifecycle_rules(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """A lifecycle policy that actually expires something."""
    if args.resource_type != ECR_LIFECYCLE or is_unknown(args.props.get("policy")):
        return
    doc = _document(args.props.get("policy")) or {}
    rules = [r for r in _as_list(doc.get("rules")) if isinstance(r, dict)]
    if not any((r.get("action") or {}).get("type") == "expire" for r in rules):
        report_violation("the ECR lifecycle policy has no expire rule (ECR.3)", None)


def ecr_repositories_have_lifecycle(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    repositories = [r for r in args.resources if r.resource_type == ECR_REPOSITORY]
    lifecycles = [r for r in args.resources if r.resource_type == ECR_LIFECYCLE]
    for repository in repositories:
        identities = {repository.urn}
        if not is_unknown(repository.props.get("name")):
            identities.add(str(repository.props["name"]))
        if not any(identities & _targets(policy, "repository") for policy in lifecycles):
            report_violation(
                f"ECR repository {repository.name} has no lifecycle policy (ECR.3)", repository.urn
            )


# --- IAM (IAM.1 / IAM.21) ---------------------------------------------------------------------------


def wildcard_problems(doc: dict[str, Any]) -> list[str]:
    """Allow statements granting ``*`` / ``service:*`` actions or acting on ``Resource: "*"``."""
    problems = []
    for statement in _as_list(doc.get("Statement")):
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        if "NotAction" in statement:
            problems.append("an Allow statement uses NotAction (grants everything else)")
        for action in _as_list(statement.get("Action")):
            if action == "*" or str(action).endswith(":*"):
                problems.append(f"action {action!r} is a wildcard")
        if "*" in _as_list(statement.get("Resource")):
            problems.append('Resource "*" (scope it to ARNs)')
    return problems


def iam_no_wildcards(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in IAM_POLICY_TYPES or is_unknown(args.props.get("policy")):
        return
    doc = _document(args.props.get("policy"))
    if doc is None:
        report_violation("the IAM policy is not a JSON document", None)
        return
    for problem in wildcard_problems(doc):
        report_violation(f"{problem} (IAM.1/IAM.21)", None)


# --- Lambda -----------------------------------------------------------------------------------------


def lambda_image_pinned(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Container functions run a digest-pinned image on x86_64 (the images are built for linux/amd64)."""
    if args.resource_type != LAMBDA_FUNCTION or args.props.get("packageType") != "Image":
        return
    uri = args.props.get("imageUri")
    if not is_unknown(uri) and not _DIGEST_URI.fullmatch(str(uri)):
        report_violation(f"imageUri must be pinned by digest (<repo>@sha256:<64 hex>), got {uri!r}", None)
    if list(args.props.get("architectures") or []) != ["x86_64"]:
        report_violation("architectures must be exactly ['x86_64'] (images are linux/amd64)", None)


def lambda_no_plaintext_secrets(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Secret-looking variables must hold a reference (a Secrets Manager/SSM ARN), never the value."""
    if args.resource_type != LAMBDA_FUNCTION:
        return
    variables = (args.props.get("environment") or {}).get("variables") or {}
    for name, value in variables.items():
        if _SECRET_NAME.search(name) and not is_unknown(value) and not _REFERENCE_VALUE.fullmatch(str(value)):
            # Never echo the value: it may be the secret.
            report_violation(f"environment variable {name} looks like a plaintext secret; pass an ARN", None)


def log_group_retention(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != LOG_GROUP:
        return
    days = args.props.get("retentionInDays")
    if not isinstance(days, int | float) or days <= 0:
        report_violation("log groups need a retention period (retentionInDays > 0)", None)


ResourceCheck = Callable[[ResourceValidationArgs, ReportViolation], None]
StackCheck = Callable[[StackValidationArgs, ReportViolation], None]

# name -> (description, check); the pack and the tests both iterate these.
RESOURCE_POLICIES: dict[str, tuple[str, ResourceCheck]] = {
    "s3-public-access-block": ("S3 buckets block all public access (S3.1, S3.8).", s3_public_access_block),
    "s3-tls-only": ("S3 bucket policies deny non-TLS requests (S3.5).", s3_tls_only),
    "s3-default-encryption": ("S3 buckets have default encryption.", s3_encryption),
    "ecr-scan-and-immutable-tags": (
        "ECR repositories scan on push and use immutable tags (ECR.1, ECR.2).",
        ecr_repository,
    ),
    "ecr-lifecycle-expires": ("ECR lifecycle policies expire images (ECR.3).", ecr_lifecycle_rules),
    "iam-no-wildcards": (
        "IAM policies grant no '*' or 'service:*' actions and no Resource '*' (IAM.1, IAM.21).",
        iam_no_wildcards,
    ),
    "lambda-image-digest-x86": (
        "Container Lambdas are pinned by image digest and run on x86_64.",
        lambda_image_pinned,
    ),
    "lambda-no-plaintext-secrets": (
        "No plaintext secrets in Lambda environment variables.",
        lambda_no_plaintext_secrets,
    ),
    "log-group-retention": ("CloudWatch log groups have a retention period.", log_group_retention),
}
STACK_POLICIES: dict[str, tuple[str, StackCheck]] = {
    "s3-buckets-hardened": (
        "Every bucket has a public-access block, TLS-only policy and encryption.",
        s3_buckets_hardened,
    ),
    "ecr-repositories-have-lifecycle": (
        "Every ECR repository has a lifecycle policy (ECR.3).",
        ecr_repositories_have_lifecycle,
    ),
}


def violations(check: Callable[[Any, ReportViolation], None], args: Any) -> list[str]:
    """Run one check and collect its messages (used by the tests and handy for debugging)."""
    found: list[str] = []
    check(args, lambda message, urn=None: found.append(message))
    return found


def all_names() -> Iterable[str]:
    return [*RESOURCE_POLICIES, *STACK_POLICIES]
