"""`PipelineFunction` and its subclasses: declared outputs, documented, registered exactly.

Pulumi's own component analyzer (``pulumi.provider.experimental.analyzer``, the code that turns a Python
component into a package schema) reads the outputs and their docstrings: what it sees is what a
component provider built from these classes would publish.
"""

from __future__ import annotations

import re

import pulumi
import pytest
from pulumi.provider.experimental.analyzer import Analyzer

from components.naming import (
    ALARM_NAME_MAX,
    IAM_ROLE_NAME_MAX,
    LAMBDA_NAME_MAX,
    SCHEDULE_NAME_MAX,
    SQS_QUEUE_NAME_MAX,
)
from components.orchestrator import BackfillOrchestrator
from components.pipeline_function import PipelineFunction
from components.scraper import PriceScraper
from tests.infra.conftest import ProgramRun, run_program, stack_config, stack_files

COMPONENTS = [PriceScraper, BackfillOrchestrator]
TYPE_OF = {
    PriceScraper: "stock-pipeline:lambdas:PriceScraper",
    BackfillOrchestrator: "stock-pipeline:lambdas:BackfillOrchestrator",
}


def declared_in(component: type) -> dict[type, list[str]]:
    """Output names per declaring class, base first."""
    return {
        klass: [name for name in vars(klass).get("__annotations__", {}) if not name.startswith("_")]
        for klass in reversed(component.__mro__)
        if isinstance(klass, type) and issubclass(klass, PipelineFunction)
    }


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda c: c.__name__)
def test_pulumis_analyzer_sees_every_output_as_a_documented_string_output(component):
    analyzer = Analyzer("stock-pipeline")
    outputs, mapping = analyzer.analyze_type(component, is_component_output=True)
    assert sorted(mapping.values()) == sorted(component.output_names())
    for schema_name, prop in outputs.items():
        assert prop.type.value == "string", schema_name
    for klass, names in declared_in(component).items():
        for name in names:
            doc = analyzer.get_docstring(klass, name)
            assert (doc or "").strip(), f"{klass.__name__}.{name} has no docstring"


def test_only_the_scraper_adds_an_output():
    assert PriceScraper.output_names() == [*PipelineFunction.output_names(), "freshness_alarm_arn"]
    assert BackfillOrchestrator.output_names() == PipelineFunction.output_names()


@pytest.fixture(scope="module")
def dev_program() -> ProgramRun:
    path = stack_files()[0]
    return run_program(stack_config(path), stack=path.name.split(".")[1])


def component_urn(run: ProgramRun, component: type) -> str:
    (urn,) = [u for u in run.urns if u.split("::")[2] == TYPE_OF[component]]
    return urn


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda c: c.__name__)
def test_registers_exactly_its_declared_outputs_with_the_childrens_values(dev_program, component):
    registered = dev_program.registered_outputs[component_urn(dev_program, component)]
    assert sorted(registered) == sorted(component.output_names())
    prefix = "tiingo-price-scraper" if component is PriceScraper else "tiingo-backfill-orchestrator"
    function = dev_program.one("aws:lambda/function:Function", f"{prefix}-function")
    queue = dev_program.one("aws:sqs/queue:Queue", f"{prefix}-dlq")
    logs = dev_program.one("aws:cloudwatch/logGroup:LogGroup", f"{prefix}-logs")
    repo = dev_program.one("aws:ecr/repository:Repository", f"{prefix}-repo")
    assert registered["function_name"] == function.outputs["name"]
    assert registered["function_arn"] == function.outputs["arn"]
    assert registered["image_digest"] == function.plain["imageUri"]
    assert registered["dead_letter_queue_url"] == queue.outputs["url"]
    assert registered["dead_letter_queue_name"] == queue.outputs["name"]
    assert registered["log_group_name"] == logs.outputs["name"]
    assert registered["repository_url"] == repo.outputs["repositoryUrl"]
    alarms = {a.name: a.outputs["arn"] for a in dev_program.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert registered["errors_alarm_arn"] == alarms[f"{prefix}-errors-alarm"]
    assert registered["dead_letter_alarm_arn"] == alarms[f"{prefix}-dlq-alarm"]


def test_component_instances_expose_outputs_not_their_parts():
    captured: dict[str, PipelineFunction] = {}
    original = PipelineFunction.register_outputs

    def keep(self, outputs):  # the instances themselves, to look at their public surface
        captured[type(self).__name__] = self
        return original(self, outputs)

    PipelineFunction.register_outputs = keep
    try:
        run_program(stack_config(stack_files()[0]))
    finally:
        PipelineFunction.register_outputs = original
    for instance in captured.values():
        public = {k for k, v in vars(instance).items() if k[0] != "_" and isinstance(v, pulumi.Output)}
        assert public - {"urn"} == set(type(instance).output_names())  # urn: Pulumi's own identity
        assert not hasattr(instance, "parts")


LIMITS = {
    "aws:lambda/function:Function": LAMBDA_NAME_MAX,
    "aws:ecr/repository:Repository": LAMBDA_NAME_MAX,  # named after the function
    "aws:iam/role:Role": IAM_ROLE_NAME_MAX,
    "aws:scheduler/schedule:Schedule": SCHEDULE_NAME_MAX,
    "aws:sqs/queue:Queue": SQS_QUEUE_NAME_MAX,
    "aws:cloudwatch/metricAlarm:MetricAlarm": ALARM_NAME_MAX,
}


def test_a_long_stack_name_keeps_every_physical_name_within_its_aws_limit_and_unique():
    stack = "feature-" + "x" * 90
    run = run_program(stack_config(stack_files()[0]), stack=stack)
    for typ, limit in LIMITS.items():
        names = [r.plain["name"] for r in run.of_type(typ)]
        assert names, typ
        assert len(set(names)) == len(names), typ
        for name in names:
            assert len(name) <= limit, (typ, name)
            assert re.fullmatch(r"[a-z0-9-]+", name), name
