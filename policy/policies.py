"""The stock-pipeline policies as plain functions (unit-testable without starting a policy server).

Resource checks take ``(args, report_violation)`` like pulumi-policy's ResourceValidation; stack checks
take ``(args, report_violation)`` with ``args.resources``. Property names are the engine's (camelCase).

Through the engine ``args.props`` is a read-only proxy that raises on unknown values; every read goes
through ``policy_props`` (``get`` / ``elements`` / ``document``), so a check skips exactly the values a
preview cannot know and still judges the rest. Policy documents may be JSON text or objects.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs, StackValidationArgs

from policy_props import UNKNOWN, document, elements, get, is_unknown, statements

BUCKET = "aws:s3/bucket:Bucket"
BUCKET_V2 = "aws:s3/bucketV2:BucketV2"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
BUCKET_SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
ECR_REPOSITORY = "aws:ecr/repository:Repository"
ECR_LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"
LAMBDA_FUNCTION = "aws:lambda/function:Function"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
IAM_ROLE = "aws:iam/role:Role"
SNS_TOPIC = "aws:sns/topic:Topic"
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
# A setting *about* a secret (TIINGO_TOKEN_MAX_AGE_MINUTES=15) holds a number or a flag, never the secret.
_SETTING_NAME = re.compile(r"_(MINUTES|SECONDS|MS|HOURS|DAYS|TTL|COUNT|LENGTH|ENABLED)$", re.IGNORECASE)
_SETTING_VALUE = re.compile(r"\d{1,6}|true|false", re.IGNORECASE)
_BUCKET_ARN = re.compile(r"arn:aws[a-z-]*:s3:::([^/*]+)")


# --- S3 (Security Hub S3.1 / S3.8 public access, S3.5 TLS, SSE) -------------------------------------


def s3_public_access_block(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """All four public-access blocks on."""
    if args.resource_type != PUBLIC_ACCESS_BLOCK:
        return
    flags = {flag: get(args.props, flag) for flag in PUBLIC_ACCESS_FLAGS}
    off = [flag for flag, value in flags.items() if value is not True and not is_unknown(value)]
    if off:
        report_violation(f"public access must be blocked: set {', '.join(off)} to true (S3.1/S3.8)", None)


def _is_false(value: Any) -> bool:
    """IAM condition values: ``false``, ``"false"`` or a one-element list of either."""
    values = elements(value)
    return len(values) == 1 and str(values[0]).lower() == "false"


def _covers_bucket_and_objects(resources: list[Any], bucket: str | None) -> bool:
    """The statement names the bucket ARN *and* ``<bucket ARN>/*`` (or ``*``): bucket and object requests.

    AWS Config's s3-bucket-ssl-requests-only asks for both: a deny on the bucket ARN alone leaves every
    object reachable over plain HTTP.
    """
    arns = {str(r) for r in resources}
    if "*" in arns:
        return True
    for arn in arns:
        match = _BUCKET_ARN.fullmatch(arn)
        if match and f"{arn}/*" in arns and (bucket is None or match.group(1) == bucket):
            return True
    return False


def denies_insecure_transport(doc: Mapping[str, Any], bucket: str | None = None) -> bool:
    """A Deny for every principal, all S3 actions, bucket and objects, when aws:SecureTransport is false."""
    for statement in statements(doc):
        principal = get(statement, "Principal")
        everyone = principal == "*" or (isinstance(principal, Mapping) and get(principal, "AWS") == "*")
        if get(statement, "Effect") != "Deny" or not everyone:
            continue
        actions = {str(a) for a in elements(get(statement, "Action"))}
        condition = get(get(get(statement, "Condition"), "Bool"), "aws:SecureTransport")
        resources = elements(get(statement, "Resource"))
        if actions & {"s3:*", "*"} and _is_false(condition) and _covers_bucket_and_objects(resources, bucket):
            return True
    return False


def s3_tls_only(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """The bucket policy denies every request without TLS, to the bucket and to its objects."""
    policy = get(args.props, "policy")
    if args.resource_type != BUCKET_POLICY or is_unknown(policy):
        return
    bucket = get(args.props, "bucket")
    doc = document(policy)
    if doc is None or not denies_insecure_transport(doc, None if is_unknown(bucket) else bucket):
        report_violation(
            "the bucket policy must deny aws:SecureTransport = false for Principal '*' on both"
            " arn:aws:s3:::<bucket> and arn:aws:s3:::<bucket>/* (S3.5)",
            None,
        )


def s3_encryption(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Default encryption with SSE-S3 or SSE-KMS."""
    if args.resource_type != BUCKET_SSE:
        return
    rules = elements(get(args.props, "rules"))
    algorithms = [get(get(rule, "applyServerSideEncryptionByDefault"), "sseAlgorithm") for rule in rules]
    if any(is_unknown(value) for value in [*rules, *algorithms]):
        return
    if not any(algorithm in ("AES256", "aws:kms", "aws:kms:dsse") for algorithm in algorithms):
        report_violation("the bucket needs default encryption (sseAlgorithm AES256 or aws:kms)", None)


def _targets(resource: Any, prop: str) -> set[str]:
    """What a resource's ``prop`` points at: its value and the URNs it depends on for that property."""
    value = get(resource.props, prop)
    found = {str(value)} if value is not None and not is_unknown(value) else set()
    for dependency in (getattr(resource, "property_dependencies", None) or {}).get(prop, []):
        found.add(dependency.urn)
    return found


def _identities(resource: Any, prop: str) -> set[str]:
    """A resource's URN and, when known, the physical name other resources refer to it by."""
    value = get(resource.props, prop)
    return {resource.urn} | ({str(value)} if value is not None and not is_unknown(value) else set())


def s3_buckets_hardened(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every bucket of the stack has a public-access block, a TLS-only policy and default encryption."""
    buckets = [r for r in args.resources if r.resource_type in (BUCKET, BUCKET_V2)]
    companions = {
        "no public-access block (S3.1/S3.8)": PUBLIC_ACCESS_BLOCK,
        "no bucket policy (S3.5 needs a TLS-only one)": BUCKET_POLICY,
        "no default encryption": BUCKET_SSE,
    }
    for bucket in buckets:
        identities = _identities(bucket, "bucket")
        for what, typ in companions.items():
            if not any(identities & _targets(r, "bucket") for r in args.resources if r.resource_type == typ):
                report_violation(f"bucket {bucket.name} has {what}", bucket.urn)


# --- ECR (ECR.1 scan on push, ECR.2 immutable tags, ECR.3 lifecycle) --------------------------------


def ecr_repository(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != ECR_REPOSITORY:
        return
    scan = get(get(args.props, "imageScanningConfiguration"), "scanOnPush")
    if scan is not True and not is_unknown(scan):
        report_violation("ECR repositories must scan images on push (ECR.1)", None)
    mutability = get(args.props, "imageTagMutability")
    if mutability not in ("IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION") and not is_unknown(mutability):
        report_violation("ECR repositories must use immutable tags (ECR.2)", None)


def ecr_lifecycle_rules(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """A lifecycle policy that actually expires something."""
    policy = get(args.props, "policy")
    if args.resource_type != ECR_LIFECYCLE or is_unknown(policy):
        return
    rules = elements(get(document(policy), "rules"))
    if not any(get(get(rule, "action"), "type") == "expire" for rule in rules):
        report_violation("the ECR lifecycle policy has no expire rule (ECR.3)", None)


def ecr_repositories_have_lifecycle(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    repositories = [r for r in args.resources if r.resource_type == ECR_REPOSITORY]
    lifecycles = [r for r in args.resources if r.resource_type == ECR_LIFECYCLE]
    for repository in repositories:
        identities = _identities(repository, "name")
        if not any(identities & _targets(policy, "repository") for policy in lifecycles):
            report_violation(
                f"ECR repository {repository.name} has no lifecycle policy (ECR.3)", repository.urn
            )


# --- IAM (IAM.1 / IAM.21) ---------------------------------------------------------------------------


def wildcard_problems(doc: Mapping[str, Any]) -> list[str]:
    """Allow statements granting ``*`` / ``service:*`` actions or acting on ``Resource: "*"``."""
    problems = []
    for statement in statements(doc):
        if get(statement, "Effect") != "Allow":
            continue
        if get(statement, "NotAction") is not None:
            problems.append("an Allow statement uses NotAction (grants everything else)")
        for action in elements(get(statement, "Action")):
            if action == "*" or str(action).endswith(":*"):
                problems.append(f"action {action!r} is a wildcard")
        if "*" in elements(get(statement, "Resource")):
            problems.append('Resource "*" (scope it to ARNs)')
    return problems


def _policy_documents(args: ResourceValidationArgs) -> list[tuple[str, Any]]:
    """(label, policy text or object) of every identity policy the resource carries; unknowns skipped."""
    if args.resource_type in IAM_POLICY_TYPES:
        found = [("the IAM policy", get(args.props, "policy"))]
    elif args.resource_type == IAM_ROLE:
        found = [
            (f"inline policy {get(inline, 'name')!r}", get(inline, "policy"))
            for inline in elements(get(args.props, "inlinePolicies"))
        ]
    else:
        return []
    return [(label, policy) for label, policy in found if policy is not None and not is_unknown(policy)]


def iam_no_wildcards(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    for label, policy in _policy_documents(args):
        doc = document(policy)
        if doc is None:
            report_violation(f"{label} is not a JSON document", None)
            continue
        for problem in wildcard_problems(doc):
            report_violation(f"{label}: {problem} (IAM.1/IAM.21)", None)


def _condition_keys(statement: Mapping[str, Any]) -> set[str]:
    condition = get(statement, "Condition")
    if not isinstance(condition, Mapping):
        return set()
    return {str(key).lower() for operator in condition for key in (get(condition, operator) or {})}


def iam_service_trust_scoped(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """A role an AWS service may assume names the account or resource the service acts for.

    Without ``aws:SourceAccount`` / ``aws:SourceArn`` the service can be made to assume the role on behalf
    of anyone who can point it at the role (the cross-service confused deputy).
    """
    policy = get(args.props, "assumeRolePolicy")
    if args.resource_type != IAM_ROLE or policy is None or is_unknown(policy):
        return
    doc = document(policy)
    if doc is None:
        report_violation("the trust policy is not a JSON document", None)
        return
    for statement in statements(doc):
        services = [s for s in elements(get(get(statement, "Principal"), "Service")) if not is_unknown(s)]
        if get(statement, "Effect") != "Allow" or not services:
            continue
        if not _condition_keys(statement) & {"aws:sourceaccount", "aws:sourcearn"}:
            report_violation(
                f"the trust of {', '.join(map(str, services))} needs an aws:SourceAccount or aws:SourceArn"
                " condition (confused deputy)",
                None,
            )


# --- SNS (SNS.1) ------------------------------------------------------------------------------------


def sns_topic_encrypted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Topics are encrypted at rest with a KMS key (Security Hub SNS.1)."""
    key = get(args.props, "kmsMasterKeyId")
    if args.resource_type == SNS_TOPIC and not key:
        report_violation("SNS topics must be encrypted: set kmsMasterKeyId (SNS.1)", None)


# --- Lambda -----------------------------------------------------------------------------------------


def lambda_image_pinned(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Container functions run a digest-pinned image on x86_64 (the images are built for linux/amd64)."""
    if args.resource_type != LAMBDA_FUNCTION or get(args.props, "packageType") != "Image":
        return
    uri = get(args.props, "imageUri")
    if not is_unknown(uri) and not _DIGEST_URI.fullmatch(str(uri)):
        report_violation(f"imageUri must be pinned by digest (<repo>@sha256:<64 hex>), got {uri!r}", None)
    architectures = elements(get(args.props, "architectures"))
    if UNKNOWN not in architectures and architectures != ["x86_64"]:
        report_violation("architectures must be exactly ['x86_64'] (images are linux/amd64)", None)


def lambda_no_plaintext_secrets(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Secret-looking variables must hold a reference (a Secrets Manager/SSM ARN), never the value."""
    if args.resource_type != LAMBDA_FUNCTION:
        return
    variables = get(get(args.props, "environment"), "variables")
    if not isinstance(variables, Mapping):
        return
    for name in variables:
        value = get(variables, name)
        if not _SECRET_NAME.search(name) or is_unknown(value) or _REFERENCE_VALUE.fullmatch(str(value)):
            continue
        if _SETTING_NAME.search(name) and _SETTING_VALUE.fullmatch(str(value)):
            continue
        # Never echo the value: it may be the secret.
        report_violation(f"environment variable {name} looks like a plaintext secret; pass an ARN", None)


def log_group_retention(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != LOG_GROUP:
        return
    days = get(args.props, "retentionInDays")
    if is_unknown(days):
        return
    if isinstance(days, bool) or not isinstance(days, int | float) or days <= 0:
        report_violation("log groups need a retention period (retentionInDays > 0)", None)


ResourceCheck = Callable[[ResourceValidationArgs, ReportViolation], None]
StackCheck = Callable[[StackValidationArgs, ReportViolation], None]

# name -> (description, check); the pack and the tests both iterate these.
RESOURCE_POLICIES: dict[str, tuple[str, ResourceCheck]] = {
    "s3-public-access-block": ("S3 buckets block all public access (S3.1, S3.8).", s3_public_access_block),
    "s3-tls-only": (
        "S3 bucket policies deny non-TLS requests to the bucket and its objects (S3.5).",
        s3_tls_only,
    ),
    "s3-default-encryption": ("S3 buckets have default encryption.", s3_encryption),
    "ecr-scan-and-immutable-tags": (
        "ECR repositories scan on push and use immutable tags (ECR.1, ECR.2).",
        ecr_repository,
    ),
    "ecr-lifecycle-expires": ("ECR lifecycle policies expire images (ECR.3).", ecr_lifecycle_rules),
    "iam-no-wildcards": (
        "IAM policies (and roles' inline policies) grant no '*' or 'service:*' actions and no"
        " Resource '*' (IAM.1, IAM.21).",
        iam_no_wildcards,
    ),
    "iam-service-trust-scoped": (
        "Roles trusted by an AWS service require aws:SourceAccount or aws:SourceArn (confused deputy).",
        iam_service_trust_scoped,
    ),
    "sns-topic-encrypted": ("SNS topics are encrypted with a KMS key (SNS.1).", sns_topic_encrypted),
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
