"""The policy pack as the CLI runs it (`python -m pulumi.policy`), over the Analyzer gRPC protocol.

This is the pack's contract: the real program, previewed on a fresh stack and after `pulumi up`, passes
every policy with none skipped; each deliberately broken resource is caught through the protocol.
"""

from __future__ import annotations

import pytest

from policy import policies as p
from tests.infra.conftest import stack_files
from tests.infra.policy_cases import BROKEN, BROKEN_IN_PREVIEW, CANARY, MISSING_COMPANION, cases
from tests.infra.policy_harness import (
    ProgramGraph,
    analyze_deployment,
    analyze_request,
    program_graph,
    running_pack,
    stack_request,
)

STACKS = {path.name: path for path in stack_files()}


@pytest.fixture(scope="module")
def graphs() -> dict[tuple[str, bool], ProgramGraph]:
    """Every stack's program, as a fresh preview and as after `pulumi up`."""
    return {
        (name, preview): program_graph(path, preview=preview)
        for name, path in STACKS.items()
        for preview in (True, False)
    }


@pytest.fixture(scope="module")
def pack():
    with running_pack() as client:
        yield client


def test_the_pack_announces_every_policy_as_mandatory(pack):
    info = pack.info()
    assert info.name == "stock-pipeline-security"
    assert sorted(policy.name for policy in info.policies) == sorted(p.all_names())
    assert all(policy.enforcementLevel == 1 for policy in info.policies)  # MANDATORY


@pytest.mark.parametrize("preview", [True, False], ids=["fresh-preview", "after-up"])
@pytest.mark.parametrize("stack", sorted(STACKS))
def test_the_program_passes_every_policy_and_none_is_skipped(pack, graphs, stack, preview):
    graph = graphs[(stack, preview)]
    verdict = analyze_deployment(pack, graph, graphs[(stack, False)] if preview else None)
    assert [d.message for d in verdict.violations()] == []
    assert [d.message for d in verdict.skipped()] == []  # no policy aborted on an unknown value
    assert verdict.all == []


def test_a_fresh_preview_really_has_unknowns(graphs):
    """The preview graph is not the `up` graph in disguise: the values the checks must skip are unknown."""
    graph = graphs[(sorted(STACKS)[0], True)]
    functions = [r for r in graph.resources if r.typ == p.LAMBDA_FUNCTION]
    assert functions
    assert all(type(r.inputs["imageUri"]).__name__ == "Unknown" for r in functions)


@pytest.mark.parametrize("resource_type", sorted({b.typ for _, b in cases(BROKEN)}))
def test_every_checked_type_is_in_the_program(graphs, resource_type):
    """A pass means something only if the program has the resource the policy checks."""
    assert any(r.typ == resource_type for r in graphs[(sorted(STACKS)[0], False)].resources)


@pytest.mark.parametrize(("policy", "broken"), cases(BROKEN), ids=lambda c: getattr(c, "label", c))
def test_a_broken_resource_is_caught_through_the_protocol(pack, graphs, policy, broken):
    graph = graphs[(sorted(STACKS)[0], False)]
    record, props = broken.props(graph.resources)
    diagnostics = pack.analyze(analyze_request(record, props))
    assert {d.policy for d in diagnostics if d.violation} == {policy}
    assert all(CANARY not in d.message for d in diagnostics)  # a violation never echoes a secret


@pytest.mark.parametrize(("policy", "broken"), cases(BROKEN_IN_PREVIEW), ids=lambda c: getattr(c, "label", c))
def test_a_broken_value_next_to_unknowns_is_still_caught(pack, graphs, policy, broken):
    graph = graphs[(sorted(STACKS)[0], True)]
    record, props = broken.props(graph.resources)
    diagnostics = pack.analyze(analyze_request(record, props))
    assert not any(d.skipped for d in diagnostics)
    assert {d.policy for d in diagnostics if d.violation} == {policy}


@pytest.mark.parametrize("preview", [True, False], ids=["fresh-preview", "after-up"])
@pytest.mark.parametrize(
    ("policy", "missing"), [(name, typ) for name, types in MISSING_COMPANION.items() for typ in types]
)
def test_a_missing_companion_fails_the_stack_policy(pack, graphs, policy, missing, preview):
    """With names unknown on a preview, the stack policies follow property dependencies instead."""
    stack = sorted(STACKS)[0]
    graph = graphs[(stack, preview)]
    dropped = next(r for r in graph.resources if r.typ == missing)
    known = graphs[(stack, False)] if preview else None
    verdict = analyze_deployment(pack, graph, known, without=frozenset({dropped.urn}))
    assert {d.policy for d in verdict.violations()} == {policy}
    assert not verdict.skipped()


def test_an_unknown_policy_document_is_skipped_not_reported(pack, graphs):
    graph = graphs[(sorted(STACKS)[0], True)]
    role_policies = [r for r in graph.resources if r.typ == "aws:iam/rolePolicy:RolePolicy"]
    assert role_policies
    for record in role_policies:
        assert type(record.inputs["policy"]).__name__ == "Unknown"
        assert pack.analyze(analyze_request(record)) == []


def test_stack_requests_carry_property_dependencies(graphs):
    graph = graphs[(sorted(STACKS)[0], True)]
    request = stack_request(graph, {r.urn: r.outputs for r in graph.resources})
    # The data bucket's block (the Athena results bucket has one too; registration order is not fixed).
    pab = next(
        r for r in request.resources if r.type == p.PUBLIC_ACCESS_BLOCK and r.name == "data-public-access"
    )
    assert any(urn.endswith("::data-bucket") for urn in pab.propertyDependencies["bucket"].urns)
