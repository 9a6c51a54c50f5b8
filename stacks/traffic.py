"""Traffic: Route 53 failover records for the application, each gated by an alarm in the partner region.

The record of region R is healthy while R's endpoint answers HTTPS AND the gate alarm of R, which lives in the partner
region, is OK (a CALCULATED health check of both). A runbook evacuates R with one PutMetricData of `Evacuate=1` into
the gate metric in the surviving region: no Route 53 control-plane call (that plane lives in us-east-1, possibly the
region that failed), and no call into the failed region. The alarm ignores missing data and Route 53 keeps the last
known status on insufficient data, so one data point holds the gate until the next (docs/stacks.md argues it).

`TrafficGateStack` (one per region) holds the gate alarm of the partner region; `TrafficStack` (global resources,
deployed with the primary region) holds the health checks and the records and depends on both gates.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_sns as sns
from constructs import Construct

from dr_runbooks.topology import (
    TRAFFIC_GATE_DIMENSION,
    TRAFFIC_GATE_METRIC,
    TRAFFIC_GATE_NAMESPACE,
    TRAFFIC_RECORD_TTL_SECONDS,
    TrafficGate,
    TrafficTopology,
)
from stacks.site import Site

HEALTH_PATH = "/health"


def _traffic(site: Site) -> TrafficTopology:
    traffic = site.topology.traffic
    if traffic is None:
        raise ValueError("traffic stacks need hosted_zone_name, primary_endpoint and dr_endpoint in the config")
    return traffic


class TrafficGateStack(cdk.Stack):
    """The gate alarm kept in this region for the partner region's record; it also tells on-call it changed."""

    def __init__(self, scope: Construct, site: Site) -> None:
        super().__init__(scope, site.stack_name("traffic-gate"), env=site.env,
                         description=f"{site.prefix} traffic gate of {site.partner_region}")
        gate = _traffic(site).gates[site.partner_region]
        assert gate.alarm_region == site.region
        alarm = cloudwatch.Alarm(
            self,
            "Gate",
            alarm_name=gate.alarm_name,
            alarm_description=f"ALARM takes {gate.region} out of DNS; runbooks put {TRAFFIC_GATE_METRIC}=1/0 here",
            metric=cloudwatch.Metric(
                namespace=TRAFFIC_GATE_NAMESPACE,
                metric_name=TRAFFIC_GATE_METRIC,
                dimensions_map={TRAFFIC_GATE_DIMENSION: gate.dimension_value},
                statistic="Maximum",
                period=cdk.Duration.minutes(1),
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.IGNORE,
        )
        action = cloudwatch_actions.SnsAction(sns.Topic.from_topic_arn(self, "OnCall", site.here.oncall_topic_arn))
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)


class TrafficStack(cdk.Stack):
    """Health checks and failover records: PRIMARY for the primary region, SECONDARY for the DR region."""

    def __init__(self, scope: Construct, site: Site) -> None:
        super().__init__(scope, site.stack_name("traffic"), env=site.env,
                         description=f"{site.prefix} DNS failover of the application")
        traffic = _traffic(site)
        for region, failover in ((site.config.primary_region, "PRIMARY"), (site.config.dr_region, "SECONDARY")):
            self._record(traffic, traffic.gates[region], failover)

    def _record(self, traffic: TrafficTopology, gate: TrafficGate, failover: str) -> None:
        region = gate.region
        endpoint = route53.CfnHealthCheck(
            self,
            f"Endpoint-{region}",
            health_check_config=route53.CfnHealthCheck.HealthCheckConfigProperty(
                type="HTTPS",
                fully_qualified_domain_name=traffic.endpoints[region],
                resource_path=HEALTH_PATH,
                port=443,
                request_interval=30,
                failure_threshold=3,
                enable_sni=True,
            ),
        )
        gate_check = route53.CfnHealthCheck(
            self,
            f"Gate-{region}",
            health_check_config=route53.CfnHealthCheck.HealthCheckConfigProperty(
                type="CLOUDWATCH_METRIC",
                alarm_identifier=route53.CfnHealthCheck.AlarmIdentifierProperty(
                    name=gate.alarm_name, region=gate.alarm_region
                ),
                insufficient_data_health_status="LastKnownStatus",
            ),
        )
        both = route53.CfnHealthCheck(
            self,
            f"Serving-{region}",
            health_check_config=route53.CfnHealthCheck.HealthCheckConfigProperty(
                type="CALCULATED",
                child_health_checks=[endpoint.attr_health_check_id, gate_check.attr_health_check_id],
                health_threshold=2,
            ),
        )
        route53.CfnRecordSet(
            self,
            f"Record-{region}",
            hosted_zone_name=f"{traffic.hosted_zone_name}.",
            name=f"{traffic.record_name}.",
            type="CNAME",
            ttl=str(TRAFFIC_RECORD_TTL_SECONDS),
            resource_records=[traffic.endpoints[region]],
            set_identifier=region,
            failover=failover,
            health_check_id=both.attr_health_check_id,
        )
