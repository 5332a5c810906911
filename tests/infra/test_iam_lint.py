"""Every policy document of every stack passes parliament with no finding at MEDIUM or above."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import pytest

from tests.infra.conftest import run_program, stack_config, stack_files, stack_name
from tests.infra.iam_lint import Document, lint, policy_documents

STACKS = {path.name: path for path in stack_files()}


@pytest.fixture(scope="module")
def documents() -> dict[str, list[Document]]:
    return {
        name: policy_documents(run_program(stack_config(path), stack=stack_name(path)))
        for name, path in STACKS.items()
    }


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_every_kind_of_policy_document_is_linted(documents, stack):
    kinds = {d.where.split(" ")[0] for d in documents[stack]}
    assert {
        "aws:iam/rolePolicy:RolePolicy",  # identity
        "aws:iam/role:Role",  # trust
        "aws:s3/bucketPolicy:BucketPolicy",
        "aws:sns/topicPolicy:TopicPolicy",
        "aws:kms/key:Key",
    } <= kinds
    trusts = [d for d in documents[stack] if d.kind == "trust"]
    assert len(trusts) == 4
    assert all(d.resource_arn.startswith("arn:aws:iam::") for d in trusts)


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_no_finding_at_medium_or_above(documents, stack):
    serious = [f for d in documents[stack] for f in lint(d) if f.at_least("MEDIUM")]
    assert serious == []


def _edit(change: Callable[[dict], None]) -> Callable[[Document], Document]:
    def apply(document: Document) -> Document:
        doc = json.loads(document.text)
        change(doc)
        return replace(document, text=json.dumps(doc))

    return apply


def _first_statement(**fields: object) -> Callable[[Document], Document]:
    return _edit(lambda doc: doc["Statement"][0].update(fields))


BROKEN = {
    "typo'd action": ("-role-policy.policy", _first_statement(Action=["s3:GetObjekt"]), "UNKNOWN_ACTION"),
    "unknown service": ("-role-policy.policy", _first_statement(Action=["s4:GetObject"]), "UNKNOWN_PREFIX"),
    "object action on the bucket ARN": (
        "-role-policy.policy",
        _first_statement(Action=["s3:GetObject"], Resource=["arn:aws:s3:::stock-pipeline-data-dev"]),
        "RESOURCE_MISMATCH",
    ),
    "trust condition the action does not know": (
        "price-scraper-role.assumeRolePolicy",
        _first_statement(Condition={"StringEquals": {"s3:prefix": "prices/"}}),
        "UNKNOWN_CONDITION_FOR_ACTION",
    ),
    "topic policy with a made-up operator": (
        "topic-policy.policy",
        _first_statement(Condition={"StringEqualz": {"aws:SourceAccount": "123456789012"}}),
        "UNKNOWN_OPERATOR",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_document_is_found(documents, case):
    suffix, break_it, issue = BROKEN[case]
    document = next(d for d in documents[sorted(STACKS)[0]] if d.where.endswith(suffix))
    findings = lint(break_it(document))
    assert issue in {f.issue for f in findings if f.at_least("MEDIUM")}, findings
