"""Traffic: each region's failover record is healthy only while its endpoint answers AND its gate (in the partner
region) is OK; without the traffic keys there is no traffic stack."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from stack_assembly import Estate

from dr_runbooks.topology import TRAFFIC_GATE_DIMENSION, TRAFFIC_GATE_METRIC, TRAFFIC_GATE_NAMESPACE
from stacks.app import build_app, cdk_json_context


def _checks(estate: Estate) -> dict[str, dict[str, Any]]:
    checks = estate.resources("traffic", estate.config.primary_region, "AWS::Route53::HealthCheck")
    return {lid: check["Properties"]["HealthCheckConfig"] for lid, check in checks.items()}


def _record(estate: Estate, region: str) -> dict[str, Any]:
    records = estate.resources("traffic", estate.config.primary_region, "AWS::Route53::RecordSet").values()
    (record,) = [r["Properties"] for r in records if r["Properties"]["SetIdentifier"] == region]
    return record


def test_primary_record_is_primary_and_dr_record_is_secondary(estate: Estate) -> None:
    assert _record(estate, estate.config.primary_region)["Failover"] == "PRIMARY"
    assert _record(estate, estate.config.dr_region)["Failover"] == "SECONDARY"


def test_record_health_is_endpoint_and_gate_together(estate: Estate, region: str) -> None:
    checks = _checks(estate)
    calculated_id = _record(estate, region)["HealthCheckId"]["Fn::GetAtt"][0]
    calculated = checks[calculated_id]
    assert calculated["Type"] == "CALCULATED" and calculated["HealthThreshold"] == 2
    children = [checks[child["Fn::GetAtt"][0]] for child in calculated["ChildHealthChecks"]]
    by_type = {child["Type"]: child for child in children}
    assert by_type["HTTPS"]["FullyQualifiedDomainName"] == estate.topology.traffic.endpoints[region]
    gate = estate.topology.traffic.gates[region]
    assert by_type["CLOUDWATCH_METRIC"]["AlarmIdentifier"] == {"Name": gate.alarm_name, "Region": gate.alarm_region}
    assert by_type["CLOUDWATCH_METRIC"]["InsufficientDataHealthStatus"] == "LastKnownStatus"


def test_gate_alarm_lives_in_the_partner_region_and_holds_on_missing_data(estate: Estate, region: str) -> None:
    gate = estate.topology.traffic.gates[region]
    alarm = estate.only("traffic-gate", gate.alarm_region, "AWS::CloudWatch::Alarm")
    assert gate.alarm_region != region
    assert alarm["AlarmName"] == gate.alarm_name
    assert (alarm["Namespace"], alarm["MetricName"]) == (TRAFFIC_GATE_NAMESPACE, TRAFFIC_GATE_METRIC)
    assert alarm["Dimensions"] == [{"Name": TRAFFIC_GATE_DIMENSION, "Value": gate.dimension_value}]
    assert alarm["TreatMissingData"] == "ignore"


def test_without_traffic_keys_there_is_no_traffic_stack() -> None:
    app = build_app(cdk_json_context())
    names = [stack.stack_name for stack in app.node.children if isinstance(stack, cdk.Stack)]
    assert names and not [name for name in names if "traffic" in name]
