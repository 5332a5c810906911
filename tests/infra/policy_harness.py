"""The policy pack as the Pulumi CLI runs it, spoken to over the engine's Analyzer gRPC protocol.

How the CLI starts a Python pack (pulumi/pulumi ``sdk/go/common/resource/plugin/analyzer_plugin.go``,
``NewPolicyAnalyzer``): it runs the plugin ``pulumi-analyzer-policy-python <engine-address> .
-virtualenv=venv`` with the pack's directory as working directory; that shim
(``sdk/python/dist/pulumi-analyzer-policy-python``) execs ``python -u -m pulumi.policy "$1" "$2"``.
``pulumi.policy`` runs the pack's ``__main__.py``; ``PolicyPack(...)`` serves the Analyzer service on
127.0.0.1 and prints the port on stdout. The engine address is parsed but never dialled by
pulumi-policy 1.21 (``pulumi/policy/__main__.py`` configures the runtime without an engine), so no
engine server is needed; the harness passes a loopback address all the same.

What travels is what the engine marshals (``MarshalProperties`` with ``KeepUnknowns, KeepSecrets,
SkipInternalKeys``): an unknown value is the string sentinel ``04da6b54-…``, a secret is the
``{"4dabf…": "1b47…", "value": …}`` object. ``Analyze`` gets each resource's inputs before its step;
``AnalyzeStack`` gets every resource's outputs (on a preview: the planned state, computed outputs
unknown) with parent, dependencies and property dependencies.

The program graph comes from the real ``__main__.py`` under mocks (tests/infra/conftest.py), once as a
fresh stack's preview (every computed output unknown) and once as after ``pulumi up``.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pulumi
from google.protobuf import empty_pb2, struct_pb2
from pulumi.output import Unknown
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from tests.infra.conftest import (
    PROJECT,
    EngineUrnMonitor,
    ProgramRun,
    Recorded,
    RecordingMocks,
    run_program,
    stack_config,
)

ROOT = Path(__file__).resolve().parents[2]
PACK_DIR = ROOT / "policy"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's unknown sentinel (plugin.UnknownStringValue)
SKIPPED_PREFIX = "can't run policy"  # pulumi_policy's advisory note when a check hit an unknown value
START_SECONDS = 60


# --- the program graph as the engine sees it ---------------------------------------------------------


@dataclass(frozen=True)
class Edges:
    parent: str
    dependencies: tuple[str, ...]
    property_dependencies: dict[str, list[str]]


class GraphMocks(RecordingMocks):
    """RecordingMocks plus the edges the engine knows for each URN (filled in by GraphMonitor)."""

    def __init__(self) -> None:
        super().__init__()
        self.edges: dict[str, Edges] = {}


class PreviewMocks(GraphMocks):
    """A fresh stack's preview: nothing exists yet, so providers return the inputs and no computed outputs.

    The SDK then resolves every output the mocks leave out as unknown, as `pulumi preview` does.
    """

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        self.records.append(Recorded(args.typ, args.name, dict(args.inputs), dict(args.inputs)))
        return "", dict(args.inputs)


class GraphMonitor(EngineUrnMonitor):
    """The mock monitor, keeping each registration's parent, dependencies and property dependencies."""

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        self.mocks.edges[response.urn] = Edges(
            parent=request.parent,
            dependencies=tuple(request.dependencies),
            property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items()},
        )
        return response


@dataclass
class ProgramGraph:
    stack: str
    preview: bool
    run: ProgramRun
    edges: dict[str, Edges] = field(default_factory=dict)

    @property
    def resources(self) -> list[Recorded]:
        return [r for r in self.run.resources if r.urn]


def program_graph(stack_file: Path, *, preview: bool) -> ProgramGraph:
    stack = stack_file.name[len("Pulumi.") : -len(".yaml")]
    mocks = PreviewMocks() if preview else GraphMocks()
    run = run_program(
        stack_config(stack_file), stack=stack, preview=preview, mocks=mocks, monitor_class=GraphMonitor
    )
    return ProgramGraph(stack, preview, run, mocks.edges)


# --- wire format ----------------------------------------------------------------------------------------


def wire(value: Any) -> Any:
    """A deserialized property value as the engine marshals it for an analyzer."""
    if isinstance(value, Unknown):
        return UNKNOWN
    if isinstance(value, dict):
        return {k: wire(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [wire(v) for v in value]
    return value


def struct(props: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(wire(props))
    return message


def planned_state(preview: Recorded, known: Recorded | None) -> dict[str, Any]:
    """A preview's planned outputs: the inputs, plus every computed output (known after `up`) unknown."""
    state = dict(preview.outputs)
    for key in known.outputs if known else {}:
        state.setdefault(key, Unknown())
    return state


def analyze_request(record: Recorded, props: dict[str, Any] | None = None) -> analyzer_pb2.AnalyzeRequest:
    return analyzer_pb2.AnalyzeRequest(
        type=record.typ,
        name=record.name,
        urn=record.urn or f"urn:pulumi:dev::{PROJECT}::{record.typ}::{record.name}",
        properties=struct(record.inputs if props is None else props),
    )


def stack_request(graph: ProgramGraph, states: dict[str, dict[str, Any]]) -> analyzer_pb2.AnalyzeStackRequest:
    resources = []
    for record in (r for r in graph.resources if r.urn in states):
        edges = graph.edges.get(record.urn, Edges("", (), {}))
        resources.append(
            analyzer_pb2.AnalyzerResource(
                type=record.typ,
                name=record.name,
                urn=record.urn,
                properties=struct(states[record.urn]),
                parent=edges.parent,
                dependencies=list(edges.dependencies),
                propertyDependencies={
                    key: analyzer_pb2.AnalyzerPropertyDependencies(urns=urns)
                    for key, urns in edges.property_dependencies.items()
                    if urns
                },
            )
        )
    return analyzer_pb2.AnalyzeStackRequest(resources=resources)


# --- the running pack -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Diagnostic:
    policy: str
    message: str
    urn: str
    mandatory: bool

    @property
    def skipped(self) -> bool:
        """The check stopped at an unknown value (pulumi_policy reports it as an advisory note)."""
        return self.message.startswith(SKIPPED_PREFIX)

    @property
    def violation(self) -> bool:
        return self.mandatory and not self.skipped


def _diagnostics(response: analyzer_pb2.AnalyzeResponse) -> list[Diagnostic]:
    return [
        Diagnostic(d.policyName, d.message, d.urn, d.enforcementLevel == analyzer_pb2.MANDATORY)
        for d in response.diagnostics
    ]


class PolicyPackClient:
    def __init__(self, stub: analyzer_pb2_grpc.AnalyzerStub) -> None:
        self.stub = stub

    def info(self) -> analyzer_pb2.AnalyzerInfo:
        return self.stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)

    def analyze(self, request: analyzer_pb2.AnalyzeRequest) -> list[Diagnostic]:
        return _diagnostics(self.stub.Analyze(request, timeout=30))

    def analyze_stack(self, request: analyzer_pb2.AnalyzeStackRequest) -> list[Diagnostic]:
        return _diagnostics(self.stub.AnalyzeStack(request, timeout=60))


def _read_port(process: subprocess.Popen[bytes]) -> int:
    """The pack's handshake: its port on the first stdout line, within START_SECONDS."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], START_SECONDS)
    line = process.stdout.readline() if ready else b""
    if not line.strip().isdigit():
        process.kill()
        _, err = process.communicate(timeout=10)
        raise AssertionError(f"policy pack did not start (stdout {line!r}):\n{err.decode(errors='replace')}")
    return int(line)


@contextmanager
def running_pack(*, stack: str = "dev", dry_run: bool = True) -> Iterator[PolicyPackClient]:
    """``python -u -m pulumi.policy <engine> .`` in policy/, with the environment the CLI passes."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PULUMI_PROJECT": PROJECT,
        "PULUMI_STACK": stack,
        "PULUMI_DRY_RUN": "true" if dry_run else "false",
        "PULUMI_CONFIG": "{}",
    }
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", "."],
        cwd=PACK_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        port = _read_port(process)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=START_SECONDS)
            yield PolicyPackClient(analyzer_pb2_grpc.AnalyzerStub(channel))
    finally:
        process.kill()
        process.communicate(timeout=10)


# --- one whole deployment through the pack ------------------------------------------------------------------


@dataclass
class Verdict:
    resource: list[Diagnostic]
    stack: list[Diagnostic]

    @property
    def all(self) -> list[Diagnostic]:
        return [*self.resource, *self.stack]

    def violations(self) -> list[Diagnostic]:
        return [d for d in self.all if d.violation]

    def skipped(self) -> list[Diagnostic]:
        return [d for d in self.all if d.skipped]


def analyze_deployment(
    client: PolicyPackClient,
    graph: ProgramGraph,
    known: ProgramGraph | None = None,
    *,
    without: frozenset[str] = frozenset(),
) -> Verdict:
    """Analyze every resource (its inputs), then AnalyzeStack (outputs; planned state on a preview).

    ``known`` is the same program after `up` (which outputs a preview leaves unknown); ``without`` drops
    resources by URN, as if the program had not declared them.
    """
    records = [r for r in graph.resources if r.urn not in without]
    resource = [d for record in records for d in client.analyze(analyze_request(record))]
    by_urn = {r.urn: r for r in known.resources} if known else {}
    states = {r.urn: planned_state(r, by_urn.get(r.urn)) if graph.preview else r.outputs for r in records}
    return Verdict(resource, client.analyze_stack(stack_request(graph, states)))


def main() -> None:
    """``python -m tests.infra.policy_harness``: per stack, which policies a fresh preview runs in full."""
    from tests.infra.conftest import stack_files

    for path in stack_files():
        known = program_graph(path, preview=False)
        for graph in (program_graph(path, preview=True), known):
            with running_pack(stack=graph.stack, dry_run=graph.preview) as client:
                names = [policy.name for policy in client.info().policies]
                verdict = analyze_deployment(client, graph, known if graph.preview else None)
            skipped = sorted({d.policy for d in verdict.skipped()})
            print(
                f"{path.name} {'fresh preview' if graph.preview else 'after up'}: "
                f"{len(names) - len(skipped)}/{len(names)} policies ran in full"
                f" ({len(verdict.skipped())} evaluations aborted on an unknown: {', '.join(skipped) or '-'});"
                f" {len(verdict.violations())} violation(s)"
                f" {sorted({d.policy for d in verdict.violations()})}"
            )


if __name__ == "__main__":
    main()
