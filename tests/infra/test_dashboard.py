"""The CloudWatch dashboard body as the program deploys it: real metrics, real dimensions, real alarms.

Rules from "Dashboard Body Structure and Syntax" (CloudWatch API reference,
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html):
a 24-column grid, width 1-24 and height 1-1000 per widget, metric arrays
``[Namespace, MetricName, DimensionName, DimensionValue, ..., {rendering options}]``, a region on every
metric widget, 1-100 alarm ARNs per alarm widget. AWS metric names from the Lambda and SQS user guides
("Using CloudWatch metrics with Lambda", "Available CloudWatch metrics for Amazon SQS").
"""

from __future__ import annotations

import json
from itertools import product

import pytest

from components.dashboard import console_url
from stockpipe import layout
from tests.infra.conftest import PROJECT, REGION, ProgramRun, run_program, stack_config, stack_files

OUR_METRICS = {
    value
    for group in (layout.ScraperMetric, layout.BackfillMetric)
    for key, value in vars(group).items()
    if key.isupper()
}
AWS_METRICS = {
    "AWS/Lambda": {"Errors", "Invocations", "Throttles", "Duration", "ConcurrentExecutions"},
    "AWS/SQS": {
        "ApproximateNumberOfMessagesVisible",
        "ApproximateAgeOfOldestMessage",
        "NumberOfMessagesSent",
    },
}
RENDERING_OPTIONS = {"accountId", "color", "id", "label", "period", "region", "stat", "visible", "yAxis"}
WIDGET_TYPES = {"metric", "text", "alarm"}


@pytest.fixture(scope="module")
def program() -> ProgramRun:
    return run_program(stack_config(stack_files()[0]))


def body(run: ProgramRun) -> dict:
    (dashboard,) = run.of_type("aws:cloudwatch/dashboard:Dashboard")
    return json.loads(dashboard.plain["dashboardBody"])


def metric_lines(run: ProgramRun) -> list[list]:
    return [
        line for w in body(run)["widgets"] if w["type"] == "metric" for line in w["properties"]["metrics"]
    ]


def test_widgets_fit_the_grid_without_overlapping(program):
    cells = set()
    for widget in body(program)["widgets"]:
        assert widget["type"] in WIDGET_TYPES
        assert 1 <= widget["width"] <= 24
        assert 1 <= widget["height"] <= 1000
        assert widget["x"] + widget["width"] <= 24
        mine = set(
            product(
                range(widget["x"], widget["x"] + widget["width"]),
                range(widget["y"], widget["y"] + widget["height"]),
            )
        )
        assert not cells & mine, widget["properties"].get("title")
        cells |= mine


def test_every_metric_exists_with_a_dimension_the_program_created(program):
    functions = {f.outputs["name"] for f in program.of_type("aws:lambda/function:Function")}
    queues = {q.outputs["name"] for q in program.of_type("aws:sqs/queue:Queue")}
    for widget in body(program)["widgets"]:
        if widget["type"] == "metric":
            assert widget["properties"]["region"] == REGION
    for namespace, name, dimension, value, options in metric_lines(program):
        if namespace == layout.METRIC_NAMESPACE:
            assert name in OUR_METRICS
            assert (dimension, value) in {(layout.FUNCTION_DIMENSION, f) for f in functions}
        else:
            assert name in AWS_METRICS[namespace]
            expected = functions if namespace == "AWS/Lambda" else queues
            assert dimension == ("FunctionName" if namespace == "AWS/Lambda" else "QueueName")
            assert value in expected
        assert set(options) <= RENDERING_OPTIONS
        assert options["period"] % 60 == 0


def test_the_dashboard_shows_what_the_operator_needs(program):
    shown = {(line[0], line[1]) for line in metric_lines(program)}
    ours = layout.METRIC_NAMESPACE
    assert {
        (ours, layout.ScraperMetric.ROWS_WRITTEN),
        (ours, layout.ScraperMetric.TICKERS_FAILED),
        (ours, layout.BackfillMetric.CHUNKS_FAILED),
        (ours, layout.ScraperMetric.REQUESTS),
        (ours, layout.BackfillMetric.REQUESTS),
        (ours, layout.BackfillMetric.CHUNKS_LEFT),
        (ours, layout.ScraperMetric.TRADING_DAYS_BEHIND),
        ("AWS/Lambda", "Errors"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    } <= shown
    lambda_errors = {line[3] for line in metric_lines(program) if line[:2] == ["AWS/Lambda", "Errors"]}
    assert lambda_errors == {f.outputs["name"] for f in program.of_type("aws:lambda/function:Function")}


def test_every_alarm_of_the_stack_is_shown_by_its_real_arn(program):
    (status,) = [w for w in body(program)["widgets"] if w["type"] == "alarm"]
    alarms = status["properties"]["alarms"]
    assert 1 <= len(alarms) <= 100
    assert sorted(alarms) == sorted(
        a.outputs["arn"] for a in program.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    )


def requests_widget(run: ProgramRun) -> dict:
    (widget,) = [w for w in body(run)["widgets"] if "allowance" in w["properties"].get("title", "")]
    return widget


def test_the_hourly_allowance_is_the_stacks_setting(program):
    config = stack_config(stack_files()[0])
    (line,) = requests_widget(program)["properties"]["annotations"]["horizontal"]
    assert line["value"] == int(config[f"{PROJECT}:tiingoRequestsPerHour"])
    assert all(options["period"] == 3600 for *_, options in requests_widget(program)["properties"]["metrics"])
    paid = run_program({**config, f"{PROJECT}:tiingoRequestsPerHour": 10000})
    (line,) = requests_widget(paid)["properties"]["annotations"]["horizontal"]
    assert line["value"] == 10000


def test_dashboard_name_and_console_url(program):
    (dashboard,) = program.of_type("aws:cloudwatch/dashboard:Dashboard")
    assert dashboard.plain["dashboardName"] == "stock-pipeline-dev"
    url = console_url(REGION, "stock-pipeline-dev")
    assert url == (
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
        "#dashboards/dashboard/stock-pipeline-dev"
    )
