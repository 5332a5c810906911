"""Physical names: kebab-case, stack-qualified (several stacks can share an account), within AWS limits."""

from __future__ import annotations

import hashlib
import re

# AWS name-length limits of the resources this program names (each service's API reference).
LAMBDA_NAME_MAX = 64
IAM_ROLE_NAME_MAX = 64
SCHEDULE_NAME_MAX = 64
SQS_QUEUE_NAME_MAX = 80
ALARM_NAME_MAX = 255
GLUE_NAME_MAX = 255
ATHENA_WORKGROUP_NAME_MAX = 128
ATHENA_NAMED_QUERY_NAME_MAX = 128
DASHBOARD_NAME_MAX = 255
S3_BUCKET_PREFIX_MAX = 37  # bucket names are 3-63 characters; Pulumi appends 26 to a bucket_prefix


def kebab(text: str) -> str:
    """Lower-case, runs of anything but [a-z0-9] become one hyphen (stack names may hold `_`, `.`, caps)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def physical_name(base: str, stack: str, *, suffix: str = "", max_length: int = 64) -> str:
    """``<base>[-<suffix>]-<stack>``; too long -> trimmed with a short hash so names stay unique."""
    parts = [kebab(base), kebab(suffix), kebab(stack)]
    name = "-".join(part for part in parts if part)
    if len(name) <= max_length:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: max_length - 9].rstrip('-')}-{digest}"


def bucket_prefix(base: str, stack: str) -> str:
    """A ``bucket_prefix``: ``<base>-<stack>-``, short enough for Pulumi's 26-character suffix."""
    return physical_name(base, stack, max_length=S3_BUCKET_PREFIX_MAX - 1) + "-"


def glue_name(base: str, stack: str) -> str:
    """Glue/Athena names: lower-case with underscores (a hyphen would need quoting in every query)."""
    return physical_name(base, stack, max_length=GLUE_NAME_MAX).replace("-", "_")
