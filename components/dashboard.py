"""`stock-pipeline:monitoring:PipelineDashboard`: one CloudWatch dashboard for the whole pipeline.

Rows: what was stored (rows per day) and what failed (tickers, backfill chunks); Tiingo requests per
hour against the plan's allowance and the backfill chunks still to go; freshness in trading days,
function errors and dead-letter depth; the state of every alarm. Metric names come from
stockpipe.layout (the names the functions emit); AWS/Lambda and AWS/SQS names are AWS's.

The body is built by a pure function (``dashboard_body``) from plain names, so a test can check every
widget; the component only resolves the Outputs into it. Layout rules (a 24-column grid, widths 1-24,
1-100 alarms per alarm widget) are from "Dashboard Body Structure and Syntax" in the CloudWatch API
reference.

No ``from __future__ import annotations``: Pulumi's component analyzer reads the output annotations.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.alarms import MAX_TRADING_DAYS_BEHIND
from components.naming import DASHBOARD_NAME_MAX, physical_name
from components.pipeline_function import PipelineFunction
from stockpipe.layout import FUNCTION_DIMENSION, METRIC_NAMESPACE, BackfillMetric, ScraperMetric

COMPONENT_TYPE = "stock-pipeline:monitoring:PipelineDashboard"
DAY, HOUR, FIVE_MINUTES = 86400, 3600, 300
GRID_WIDTH = 24


@dataclass(frozen=True)
class DashboardNames:
    """The plain values the body needs (resolved Outputs)."""

    region: str
    scraper_function: str
    orchestrator_function: str
    scraper_queue: str
    orchestrator_queue: str
    alarm_arns: tuple[str, ...]
    requests_per_hour: int


def _ours(metric: str, function: str, stat: str, period: int, label: str, **extra: Any) -> list[Any]:
    return [
        METRIC_NAMESPACE,
        metric,
        FUNCTION_DIMENSION,
        function,
        {"stat": stat, "period": period, "label": label, **extra},
    ]


def _graph(
    title: str, metrics: list[list[Any]], names: DashboardNames, *, width: int, **properties: Any
) -> dict[str, Any]:
    return {
        "type": "metric",
        "width": width,
        "height": 6,
        "properties": {
            "title": title,
            "region": names.region,
            "view": "timeSeries",
            "stacked": False,
            "metrics": metrics,
            **properties,
        },
    }


def _horizontal(value: float, label: str) -> dict[str, Any]:
    return {"horizontal": [{"value": value, "label": label}]}


def _widgets(n: DashboardNames) -> list[dict[str, Any]]:
    scraper, orchestrator = n.scraper_function, n.orchestrator_function
    return [
        {
            "type": "text",
            "width": GRID_WIDTH,
            "height": 2,
            "properties": {
                "markdown": (
                    f"## stock-pipeline · `{scraper}` · `{orchestrator}`\n"
                    "Daily scrape after the US close, hourly backfill. Freshness is counted in NYSE "
                    "trading days, so market holidays stay green."
                )
            },
        },
        _graph(
            "Rows written per day",
            [
                _ours(ScraperMetric.ROWS_WRITTEN, scraper, "Sum", DAY, "scraper (daily + backfill chunks)"),
                _ours(BackfillMetric.ROWS, orchestrator, "Sum", DAY, "of which backfill"),
            ],
            n,
            width=12,
        ),
        _graph(
            "Failures by kind per day",
            [
                _ours(ScraperMetric.TICKERS_FAILED, scraper, "Sum", DAY, "tickers failed (scraper)"),
                _ours(BackfillMetric.CHUNKS_FAILED, orchestrator, "Sum", DAY, "backfill chunks failed"),
                _ours(ScraperMetric.RETRIES, scraper, "Sum", DAY, "Tiingo retries"),
            ],
            n,
            width=12,
        ),
        _graph(
            "Tiingo requests per hour vs the plan's allowance",
            [
                _ours(
                    ScraperMetric.REQUESTS, scraper, "Sum", HOUR, "scraper (daily run and backfill chunks)"
                ),
                _ours(BackfillMetric.REQUESTS, orchestrator, "Sum", HOUR, "backfill run (budget used)"),
            ],
            n,
            width=12,
            annotations=_horizontal(n.requests_per_hour, f"allowance ({n.requests_per_hour}/hour)"),
            yAxis={"left": {"min": 0}},
        ),
        _graph(
            "Backfill chunks left",
            [_ours(BackfillMetric.CHUNKS_LEFT, orchestrator, "Minimum", HOUR, "chunks left")],
            n,
            width=12,
            yAxis={"left": {"min": 0}},
        ),
        _graph(
            "Freshness: NYSE trading days behind",
            [_ours(ScraperMetric.TRADING_DAYS_BEHIND, scraper, "Maximum", DAY, "stalest ticker")],
            n,
            width=8,
            annotations=_horizontal(MAX_TRADING_DAYS_BEHIND, "alarm above"),
            yAxis={"left": {"min": 0}},
        ),
        _graph(
            "Lambda errors",
            [
                [
                    "AWS/Lambda",
                    "Errors",
                    "FunctionName",
                    fn,
                    {"stat": "Sum", "period": FIVE_MINUTES, "label": fn},
                ]
                for fn in (scraper, orchestrator)
            ],
            n,
            width=8,
        ),
        _graph(
            "Dead-letter queue depth",
            [
                [
                    "AWS/SQS",
                    "ApproximateNumberOfMessagesVisible",
                    "QueueName",
                    queue,
                    {"stat": "Maximum", "period": FIVE_MINUTES, "label": queue},
                ]
                for queue in (n.scraper_queue, n.orchestrator_queue)
            ],
            n,
            width=8,
        ),
        {
            "type": "alarm",
            "width": GRID_WIDTH,
            "height": 3,
            "properties": {
                "title": "Alarms",
                "alarms": list(n.alarm_arns),
                "sortBy": "stateUpdatedTimestamp",
            },
        },
    ]


def dashboard_body(names: DashboardNames) -> dict[str, Any]:
    """The widgets, placed left to right in rows of 24 columns."""
    placed, x, y, row_height = [], 0, 0, 0
    for widget in _widgets(names):
        if x + widget["width"] > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        placed.append({**widget, "x": x, "y": y})
        x, row_height = x + widget["width"], max(row_height, widget["height"])
    return {"widgets": placed}


def console_url(region: str, name: str) -> str:
    return (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards/dashboard/{name}"
    )


@dataclass(frozen=True)
class PipelineDashboardArgs:
    scraper: PipelineFunction
    orchestrator: PipelineFunction
    alarm_arns: Sequence[pulumi.Input[str]]
    """Every alarm of the stack, shown in the alarm-status row."""
    requests_per_hour: int
    """The Tiingo plan's hourly allowance (stack config ``tiingoRequestsPerHour``)."""


class PipelineDashboard(pulumi.ComponentResource):
    """The pipeline's CloudWatch dashboard."""

    dashboard_name: pulumi.Output[str]
    """Name of the dashboard (``aws cloudwatch get-dashboard --dashboard-name <name>``)."""

    dashboard_url: pulumi.Output[str]
    """Console URL of the dashboard."""

    def __init__(
        self, name: str, args: PipelineDashboardArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        physical = physical_name("stock-pipeline", pulumi.get_stack(), max_length=DASHBOARD_NAME_MAX)
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        body = pulumi.Output.all(
            region,
            args.scraper.function_name,
            args.orchestrator.function_name,
            args.scraper.dead_letter_queue_name,
            args.orchestrator.dead_letter_queue_name,
            pulumi.Output.all(*args.alarm_arns),
        ).apply(
            lambda v: json.dumps(
                dashboard_body(
                    DashboardNames(v[0], v[1], v[2], v[3], v[4], tuple(v[5]), args.requests_per_hour)
                )
            )
        )
        dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=physical,
            dashboard_body=body,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.dashboard_name = dashboard.dashboard_name
        self.dashboard_url = pulumi.Output.all(region, dashboard.dashboard_name).apply(
            lambda v: console_url(*v)
        )
        self.register_outputs({"dashboard_name": self.dashboard_name, "dashboard_url": self.dashboard_url})
