"""The stock-pipeline policies as plain functions (unit-testable without starting a policy server).

Resource checks take ``(args, report_violation)`` like pulumi-policy's ResourceValidation; stack checks
take ``(args, report_violation)`` with ``args.resources``. Property names are the engine's (camelCase).

Through the engine, ``args.props`` is a read-only *proxy* (a ``collections.abc.Mapping`` whose lists are
``Sequence`` proxies, never ``dict``/``list``) that raises ``UnknownValueError`` when a value is unknown
during a preview; left unhandled, that error aborts the whole policy for the resource. So every read goes
through ``get`` / ``elements``, which turn an unknown into ``UNKNOWN``: a check skips exactly the values
it cannot know and still judges the rest. Policy documents may be JSON text or objects.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs, StackValidationArgs
from pulumi_policy.proxy import UnknownValueError

# The engine's marker for a value that is only known after the update (a string unknown); the others
# are the typed sentinels pulumi_policy also recognises.
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
_UNKNOWNS = frozenset(
    {
        UNKNOWN,
        "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",  # boolean
        "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # number
        "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",  # array
        "030794c1-ac77-496b-92df-f27374a8bd58",  # asset
        "e48ece36-62e2-4504-bad9-02848725956a",  # archive
        "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",  # object
    }
)

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
_BUCKET_ARN = re.compile(r"arn:aws[a-z-]*:s3:::([^/*]+)")


def is_unknown(value: Any) -> bool:
    return isinstance(value, str) and value in _UNKNOWNS


def get(mapping: Any, key: str, default: Any = None) -> Any:
    """``mapping[key]`` from a dict or an engine proxy: ``UNKNOWN`` when not known yet, else ``default``."""
    if not isinstance(mapping, Mapping):
        return default
    try:
        value = mapping[key]
    except KeyError:
        return default
    except UnknownValueError:
        return UNKNOWN
    return UNKNOWN if is_unknown(value) else value


def elements(value: Any) -> list[Any]:
    """A Sequence's items (a lone value as one item, nothing for None); unknown items as ``UNKNOWN``."""
    if value is None:
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        return [value]
    items = []
    for index in range(len(value)):
        try:
            item = value[index]
        except UnknownValueError:
            item = UNKNOWN
        items.append(UNKNOWN if is_unknown(item) else item)
    return items


def document(value: Any) -> Mapping[str, Any] | None:
    """A policy document given as JSON text or as an object; None when unknown or unparsable."""
    if value is None or is_unknown(value):
        return None
    if isinstance(value, Mapping):
        return value
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return None
    return parsed if isinstance(parsed, Mapping) else None


def statements(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in elements(get(doc, "Statement")) if isinstance(s, Mapping)]


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
        if _SECRET_NAME.search(name) and not is_unknown(value) and not _REFERENCE_VALUE.fullmatch(str(value)):
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
