"""Every IAM policy document the program creates, linted by parliament (AWS's action/resource database).

Documents are captured from the real program under mocks after `up` (ARNs known): any property that holds
a JSON policy (``policy``, ``assumeRolePolicy``, a role's ``inlinePolicies``) -- identity, trust, bucket,
topic, key, queue and secret policies alike, including resources added later.

parliament models identity and resource policies, which always have a ``Resource``. A trust policy is the
role's own resource policy and has none (the role *is* the resource), so each trust statement is linted
with ``Resource`` set to the role's ARN: parliament then checks the action against the role resource type
and the condition keys against the action, instead of stopping at "no Resource".

Severity: parliament's own, except that an unknown action or service prefix (a typo AWS would reject or,
worse, silently never match) counts as MEDIUM. The bar is zero findings at MEDIUM or above.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any

from tests.infra.conftest import ProgramRun

with warnings.catch_warnings():  # parliament imports pkg_resources, deprecated in setuptools
    warnings.simplefilter("ignore")
    import parliament

SEVERITIES = ("INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL")
RAISED_TO_MEDIUM = frozenset({"UNKNOWN_ACTION", "UNKNOWN_PREFIX"})
BAR = "MEDIUM"


@dataclass(frozen=True)
class Document:
    where: str  # "<type> <logical name>.<property>"
    kind: str  # "trust" | "policy"
    text: str
    resource_arn: str = ""  # for trust policies: the role


@dataclass(frozen=True)
class Finding:
    where: str
    issue: str
    severity: str
    detail: str

    def at_least(self, level: str = BAR) -> bool:
        return SEVERITIES.index(self.severity) >= SEVERITIES.index(level)


def _json_policy(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, str) or not value.lstrip().startswith("{"):
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) and "Statement" in parsed else None


def policy_documents(run: ProgramRun) -> list[Document]:
    found = []
    for record in run.resources:
        plain = record.plain
        candidates = [(key, value) for key, value in plain.items() if key != "inlinePolicies"]
        candidates += [
            (f"inlinePolicies[{inline.get('name')}]", inline.get("policy"))
            for inline in plain.get("inlinePolicies") or []
        ]
        for key, value in candidates:
            if _json_policy(value) is None:
                continue
            trust = key == "assumeRolePolicy"
            found.append(
                Document(
                    where=f"{record.typ} {record.name}.{key}",
                    kind="trust" if trust else "policy",
                    text=value,
                    resource_arn=str(record.outputs.get("arn", "")) if trust else "",
                )
            )
    return found


def _as_linted(document: Document) -> str:
    if document.kind != "trust":
        return document.text
    doc = json.loads(document.text)
    statements = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
    doc["Statement"] = [{**s, "Resource": s.get("Resource", document.resource_arn)} for s in statements]
    return json.dumps(doc)


def lint(document: Document) -> list[Finding]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analyzed = parliament.analyze_policy_string(_as_linted(document))
    findings = []
    for raw in analyzed.findings:
        finding = parliament.enhance_finding(raw)
        severity = "MEDIUM" if finding.issue in RAISED_TO_MEDIUM else finding.severity
        findings.append(Finding(document.where, finding.issue, severity, str(finding.detail)[:300]))
    return findings


def main() -> None:
    """``python -m tests.infra.iam_lint``: every finding for every stack's documents."""
    from tests.infra.conftest import run_program, stack_config, stack_files, stack_name

    for path in stack_files():
        documents = policy_documents(run_program(stack_config(path), stack=stack_name(path)))
        findings = [f for d in documents for f in lint(d)]
        serious = [f for f in findings if f.at_least()]
        print(f"{path.name}: {len(documents)} documents, {len(findings)} findings, {len(serious)} at {BAR}+")
        for finding in findings:
            print(f"  {finding.severity:8} {finding.issue:28} {finding.where}: {finding.detail[:120]}")


if __name__ == "__main__":
    main()
