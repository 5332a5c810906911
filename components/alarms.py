"""CloudWatch alarms to one SNS topic: function errors, dead-letter depth, and data freshness.

Freshness matters most: a pipeline that silently stops writing rows is the worst failure. The scraper
emits ``TradingDaysBehind`` (EMF, namespace ``StockPipeline``, dimension ``Function``): NYSE trading days
between the last trading day and the stalest ticker's last stored date. The alarm fires when a 24-hour
window that must contain a scheduled run reports more than one day behind, or reports nothing at all.
A market holiday is not a trading day, so it no longer looks like a missed run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import pulumi
import pulumi_aws as aws

from components import policies
from components.naming import physical_name
from stockpipe import layout

METRIC_NAMESPACE = layout.METRIC_NAMESPACE
DAY_SECONDS = 86400
KEY_DELETION_WINDOW_DAYS = 30  # the most time KMS allows to cancel a scheduled key deletion
_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
# Dates in winter and summer: a run day must hold in both (DST moves a run across UTC midnight).
_SEASONS = (datetime(2024, 1, 8), datetime(2024, 7, 8))  # both Mondays


def _days_of_week(field: str) -> set[int] | None:
    """Cron day-of-week field -> ISO weekdays (1=Mon); None for forms we do not interpret."""
    if field in ("*", "?"):
        return set(range(1, 8))
    days: set[int] = set()
    for part in field.upper().split(","):
        bounds = part.split("-")
        if len(bounds) > 2 or not all(b in _WEEKDAYS for b in bounds):
            return None
        first, last = _WEEKDAYS.index(bounds[0]) + 1, _WEEKDAYS.index(bounds[-1]) + 1
        if last < first:
            return None
        days.update(range(first, last + 1))
    return days


@dataclass(frozen=True)
class FreshnessWindow:
    """When a 24-hour RowsWritten sum must be > 0, in UTC as CloudWatch metric math sees it.

    CloudWatch evaluates a 1-day alarm every minute over the 24 hours before now; the datapoint's
    timestamp is the window start. A window starting on UTC day D always contains a run when D and D+1
    are both run days. Windows starting within ``blind_hours`` may straddle a run still in progress
    (its rows not yet reported), so they are not judged.
    """

    check_days: tuple[int, ...]  # ISO weekdays (1=Mon..7=Sun), DAY() numbering
    blind_hours: tuple[int, ...]  # UTC hours, HOUR() numbering


def _run_times_utc(schedule: str, timezone: str) -> list[tuple[set[int], int]] | None:
    """Per season: the UTC weekdays and the UTC hour of the runs; None if the schedule is not simple."""
    match = re.fullmatch(r"cron\((\d{1,2}) (\d{1,2}) \? \* (\S+) \*\)", schedule)
    if not match:
        return None
    minute, hour, day_field = int(match.group(1)), int(match.group(2)), match.group(3)
    local_days = _days_of_week(day_field)
    if local_days is None:
        return None
    zone, utc = ZoneInfo(timezone), ZoneInfo("UTC")
    seasons = []
    for monday in _SEASONS:
        runs = [
            monday.replace(day=monday.day + iso_day - 1, hour=hour, minute=minute, tzinfo=zone).astimezone(
                utc
            )
            for iso_day in sorted(local_days)
        ]
        seasons.append(({run.isoweekday() for run in runs}, runs[0].hour))
    return seasons


def run_days_utc(schedule: str, timezone: str) -> list[int] | None:
    """ISO weekdays (UTC) that hold a run in every season; None when the schedule is not a simple cron.

    Only ``cron(M H ? * <days> *)`` with single minute and hour values is interpreted.
    """
    seasons = _run_times_utc(schedule, timezone)
    if seasons is None:
        return None
    return sorted(set.intersection(*(days for days, _ in seasons))) or None


def freshness_window(schedule: str, timezone: str) -> FreshnessWindow | None:
    """The days and hours the freshness alarm judges; None = judge every 24 hours (no weekday logic)."""
    seasons = _run_times_utc(schedule, timezone)
    if seasons is None:
        return None
    check = set.intersection(*({d for d in days if d % 7 + 1 in days} for days, _ in seasons))
    blind = {h % 24 for _, hour in seasons for h in (hour, hour + 1)}
    return FreshnessWindow(tuple(sorted(check)), tuple(sorted(blind)))


def freshness_expression(window: FreshnessWindow | None, *, not_judged: int = 1) -> str:
    """Metric math over ``filled`` (24-hour series, gaps filled); windows not judged count ``not_judged``."""
    if window is None or (len(window.check_days) == 7 and not window.blind_hours):
        return "filled"
    days = " OR ".join(f"DAY(filled) == {day}" for day in window.check_days) or "0"
    hours = " AND ".join(f"HOUR(filled) != {hour}" for hour in window.blind_hours) or "1"
    return f"IF(({days}) AND ({hours}), filled, {not_judged})"


class AlarmTopic(pulumi.ComponentResource):
    """The SNS topic every alarm notifies, with an optional e-mail subscription (confirm the e-mail).

    Encrypted with its own customer managed KMS key (Security Hub SNS.1; CloudWatch cannot use the AWS
    managed ``alias/aws/sns``, see ``policies.alarm_key_policy``), and a topic policy that lets only this
    account's CloudWatch alarms publish (``policies.alarm_topic_policy``).
    """

    topic_arn: pulumi.Output[str]
    """The topic's ARN: the alarm and OK action of every alarm."""
    key_arn: pulumi.Output[str]
    """The customer managed KMS key that encrypts the topic."""

    def __init__(
        self,
        name: str,
        *,
        email: str | None,
        account_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("stock-pipeline:monitoring:AlarmTopic", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        stack = pulumi.get_stack()
        key = aws.kms.Key(
            f"{name}-key",
            description=f"Encrypts the stock-pipeline alarm topic ({stack}); usable by CloudWatch alarms",
            enable_key_rotation=True,
            deletion_window_in_days=KEY_DELETION_WINDOW_DAYS,
            policy=pulumi.Output.from_input(account_id).apply(
                lambda account: policies.to_json(policies.alarm_key_policy(account))
            ),
            opts=child,
        )
        aws.kms.Alias(
            f"{name}-key-alias",
            name=f"alias/{physical_name('stock-pipeline-alarms', stack, max_length=200)}",
            target_key_id=key.arn,
            opts=child,
        )
        topic = aws.sns.Topic(
            f"{name}-topic",
            name=physical_name("stock-pipeline-alarms", stack),
            kms_master_key_id=key.arn,
            opts=child,
        )
        aws.sns.TopicPolicy(
            f"{name}-topic-policy",
            arn=topic.arn,
            policy=topic.arn.apply(lambda arn: policies.to_json(policies.alarm_topic_policy(arn))),
            opts=child,
        )
        if email:
            aws.sns.TopicSubscription(
                f"{name}-email", topic=topic.arn, protocol="email", endpoint=email, opts=child
            )
        self.topic_arn = topic.arn
        self.key_arn = key.arn
        self.register_outputs({"topic_arn": self.topic_arn, "key_arn": self.key_arn})


def _any_in_5_minutes(
    name: str,
    *,
    alarm_name: str,
    description: str,
    metric: tuple[str, str, str],
    dimensions: Mapping[str, pulumi.Input[str]],
    topic_arn: pulumi.Input[str],
    parent: pulumi.Resource,
) -> aws.cloudwatch.MetricAlarm:
    """Alarm when the metric (namespace, name, statistic) reaches 1 in a 5-minute window."""
    namespace, metric_name, statistic = metric
    return aws.cloudwatch.MetricAlarm(
        name,
        name=alarm_name,
        alarm_description=description,
        namespace=namespace,
        metric_name=metric_name,
        dimensions=dict(dimensions),
        statistic=statistic,
        period=300,
        evaluation_periods=1,
        threshold=1,
        comparison_operator="GreaterThanOrEqualToThreshold",
        treat_missing_data="notBreaching",
        alarm_actions=[topic_arn],
        ok_actions=[topic_arn],
        opts=pulumi.ResourceOptions(parent=parent),
    )


def function_errors_alarm(
    name: str,
    *,
    function_name: pulumi.Input[str],
    alarm_name: str,
    topic_arn: pulumi.Input[str],
    parent: pulumi.Resource,
) -> aws.cloudwatch.MetricAlarm:
    """Any error in a 5-minute window."""
    return _any_in_5_minutes(
        name,
        alarm_name=alarm_name,
        description="The function reported errors (see its log group).",
        metric=("AWS/Lambda", "Errors", "Sum"),
        dimensions={"FunctionName": function_name},
        topic_arn=topic_arn,
        parent=parent,
    )


def queue_depth_alarm(
    name: str,
    *,
    queue_name: pulumi.Input[str],
    alarm_name: str,
    topic_arn: pulumi.Input[str],
    parent: pulumi.Resource,
) -> aws.cloudwatch.MetricAlarm:
    """Anything in the dead-letter queue: a scheduled or async invocation was lost."""
    return _any_in_5_minutes(
        name,
        alarm_name=alarm_name,
        description="Failed invocations are waiting in the dead-letter queue.",
        metric=("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum"),
        dimensions={"QueueName": queue_name},
        topic_arn=topic_arn,
        parent=parent,
    )


# --- freshness on the trading calendar ---------------------------------------------------------------

BEHIND_METRIC = layout.ScraperMetric.TRADING_DAYS_BEHIND
MAX_TRADING_DAYS_BEHIND = 1  # today's bars may be missing at run time (late data, a halted ticker)
NO_REPORT = 99  # what a judged 24-hour window without any TradingDaysBehind report counts as


def trading_days_behind_alarm(
    name: str,
    *,
    function_name: pulumi.Input[str],
    alarm_name: str,
    topic_arn: pulumi.Input[str],
    schedule: str,
    timezone: str,
    parent: pulumi.Resource,
) -> aws.cloudwatch.MetricAlarm:
    """The stalest ticker is more than MAX_TRADING_DAYS_BEHIND trading days behind, or no run reported.

    The worst report of each 24-hour window (Maximum) is judged in the windows that must contain a
    scheduled run (freshness_window: weekends and the hours around the run are not judged). In a judged
    window, no report at all counts as NO_REPORT: the schedule or the function stopped. A run on a
    market holiday reports 0 (the last trading day is stored), so holidays are quiet.
    """
    window = freshness_window(schedule, timezone)
    queries: list[aws.cloudwatch.MetricAlarmMetricQueryArgsDict] = [
        {
            "id": "behind",
            "return_data": False,
            "metric": {
                "namespace": METRIC_NAMESPACE,
                "metric_name": BEHIND_METRIC,
                "dimensions": {layout.FUNCTION_DIMENSION: function_name},
                "stat": "Maximum",
                "period": DAY_SECONDS,
            },
        },
        {"id": "filled", "expression": f"FILL(behind, {NO_REPORT})", "return_data": False},
        {
            "id": "due",
            "expression": freshness_expression(window, not_judged=0),
            "label": f"{BEHIND_METRIC} when a run was due ({NO_REPORT} = no report)",
            "return_data": True,
        },
    ]
    return aws.cloudwatch.MetricAlarm(
        name,
        name=alarm_name,
        alarm_description=(
            f"Stored prices are more than {MAX_TRADING_DAYS_BEHIND} NYSE trading day(s) behind, or the"
            f" scheduled scrape ({schedule} {timezone}) reported nothing: see the scraper's log group."
        ),
        metric_queries=queries,
        evaluation_periods=1,
        threshold=MAX_TRADING_DAYS_BEHIND,
        comparison_operator="GreaterThanThreshold",
        treat_missing_data="breaching",
        alarm_actions=[topic_arn],
        ok_actions=[topic_arn],
        opts=pulumi.ResourceOptions(parent=parent),
    )
