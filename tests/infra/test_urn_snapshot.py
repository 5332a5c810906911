"""Every resource URN of the program, per stack, against a committed snapshot.

A URN is how Pulumi knows a resource across deployments: ``urn:pulumi:<stack>::<project>::<type chain>::
<name>``, where the type chain is the parent components' types down to the resource's own. Any change of
a name, a type token or a parent turns into "delete one resource, create another" on the next
`pulumi up` (for a bucket, an ECR repository or a log group, that loses data). So refactors must leave
every existing URN alone, and additions are made deliberately: regenerate with

    UPDATE_URN_SNAPSHOT=1 .venv/bin/python -m pytest tests/infra/test_urn_snapshot.py

and review the diff of ``tests/infra/snapshots/`` (only added lines are expected).
"""

from __future__ import annotations

import os
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pytest

from tests.infra.conftest import run_program, run_with_mocks, stack_config, stack_files, stack_name

SNAPSHOTS = Path(__file__).parent / "snapshots"
STACKS = stack_files()


def snapshot_path(stack: str) -> Path:
    return SNAPSHOTS / f"urns.{stack}.txt"


@pytest.mark.parametrize("path", STACKS, ids=[stack_name(p) for p in STACKS])
def test_urns_match_the_committed_snapshot(path: Path):
    stack = stack_name(path)
    urns = run_program(stack_config(path), stack=stack).urns
    assert urns, "the program registered nothing"
    assert len(urns) == len(set(urns))
    target = snapshot_path(stack)
    if os.environ.get("UPDATE_URN_SNAPSHOT") == "1":
        target.write_text("".join(f"{urn}\n" for urn in urns))
    assert target.is_file(), f"no snapshot for stack {stack}: run with UPDATE_URN_SNAPSHOT=1 once"
    committed = target.read_text().splitlines()
    removed = sorted(set(committed) - set(urns))
    added = sorted(set(urns) - set(committed))
    assert not removed, "URNs gone (pulumi up would delete and recreate these):\n" + "\n".join(removed)
    assert not added, "new URNs not in the snapshot (regenerate it deliberately):\n" + "\n".join(added)


def test_every_stack_has_a_snapshot_and_no_snapshot_is_orphaned():
    expected = {snapshot_path(stack_name(p)).name for p in STACKS}
    assert {p.name for p in SNAPSHOTS.glob("urns.*.txt")} == expected


def test_urns_carry_the_whole_parent_chain_as_the_engine_makes_them():
    """A nested child's URN names every ancestor type (not only its parent's), and never the stack."""

    def body() -> None:
        outer = pulumi.ComponentResource("test:index:Outer", "outer")
        inner = pulumi.ComponentResource(
            "test:index:Inner", "inner", opts=pulumi.ResourceOptions(parent=outer)
        )
        aws.sns.Topic("topic", opts=pulumi.ResourceOptions(parent=inner))

    urns = run_with_mocks(body, config={}).urns
    assert urns == [
        "urn:pulumi:dev::stock-pipeline::test:index:Outer$test:index:Inner$aws:sns/topic:Topic::topic",
        "urn:pulumi:dev::stock-pipeline::test:index:Outer$test:index:Inner::inner",
        "urn:pulumi:dev::stock-pipeline::test:index:Outer::outer",
    ]
