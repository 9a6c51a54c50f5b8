"""Traffic gates and Route 53 failover health, as the design and Route 53's documented failover behaviour say."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dr_runbooks.topology import TRAFFIC_GATE_DIMENSION, TRAFFIC_GATE_METRIC, TRAFFIC_GATE_NAMESPACE
from ehr_dr_sandbox.api import Sandbox
from ehr_dr_sandbox.provision import health_check_reference

EAST, WEST = "us-east-1", "us-west-1"


def put_evacuate(sandbox: Sandbox, region: str, value: float, timestamp: datetime | None = None) -> None:
    gate = sandbox.topology.traffic.gates[region]
    datum = {"MetricName": TRAFFIC_GATE_METRIC, "Value": value,
             "Dimensions": [{"Name": TRAFFIC_GATE_DIMENSION, "Value": gate.dimension_value}]}
    if timestamp:
        datum["Timestamp"] = timestamp
    sandbox.client("cloudwatch", gate.alarm_region).put_metric_data(Namespace=TRAFFIC_GATE_NAMESPACE,
                                                                   MetricData=[datum])


def gate_state(sandbox: Sandbox, region: str) -> str:
    gate = sandbox.topology.traffic.gates[region]
    alarms = sandbox.client("cloudwatch", gate.alarm_region).describe_alarms(AlarmNames=[gate.alarm_name])
    return alarms["MetricAlarms"][0]["StateValue"]


def check_status(sandbox: Sandbox, region: str, kind: str = "serving") -> str:
    route53 = sandbox.client("route53", EAST)
    check = next(c for c in route53.list_health_checks()["HealthChecks"]
                 if c["CallerReference"] == health_check_reference(kind, region))
    observations = route53.get_health_check_status(HealthCheckId=check["Id"])["HealthCheckObservations"]
    return observations[0]["StatusReport"]["Status"].partition(":")[0]


def dns_answer(sandbox: Sandbox) -> list[str]:
    traffic = sandbox.topology.traffic
    route53 = sandbox.client("route53", EAST)
    zone = route53.list_hosted_zones_by_name(DNSName=traffic.hosted_zone_name)["HostedZones"][0]["Id"]
    return route53.test_dns_answer(HostedZoneId=zone, RecordName=traffic.record_name, RecordType="CNAME")[
        "RecordData"]


@pytest.fixture(autouse=True)
def restore_gates(sandbox: Sandbox):
    yield
    for region in (EAST, WEST):
        put_evacuate(sandbox, region, 0)


def test_with_both_gates_open_the_record_resolves_to_the_primary(sandbox):
    assert (check_status(sandbox, EAST), check_status(sandbox, WEST)) == ("Success", "Success")
    assert dns_answer(sandbox) == [sandbox.topology.traffic.endpoints[EAST]]


def test_evacuating_the_primary_alarms_its_gate_in_the_dr_region_and_fails_over(sandbox):
    put_evacuate(sandbox, EAST, 1)
    assert gate_state(sandbox, EAST) == "ALARM"
    assert sandbox.topology.traffic.gates[EAST].alarm_region == WEST
    assert check_status(sandbox, EAST) == "Failure"
    assert dns_answer(sandbox) == [sandbox.topology.traffic.endpoints[WEST]]


def test_restoring_the_gate_returns_traffic_to_the_primary(sandbox):
    put_evacuate(sandbox, EAST, 1)
    put_evacuate(sandbox, EAST, 0)
    assert gate_state(sandbox, EAST) == "OK"
    assert dns_answer(sandbox) == [sandbox.topology.traffic.endpoints[EAST]]


def test_a_gate_keeps_its_state_when_its_metric_gets_no_new_data(sandbox):
    put_evacuate(sandbox, EAST, 1)
    put_evacuate(sandbox, WEST, 0)  # data for the other gate only
    assert gate_state(sandbox, EAST) == "ALARM"


def test_the_latest_datapoint_by_timestamp_decides_not_the_last_one_sent(sandbox):
    now = datetime.now(UTC)
    put_evacuate(sandbox, EAST, 0, now)
    put_evacuate(sandbox, EAST, 1, now - timedelta(minutes=5))
    assert gate_state(sandbox, EAST) == "OK"


def test_a_dark_region_fails_its_endpoint_check_and_so_its_record(sandbox, sandbox_faults):
    sandbox_faults.region_down(WEST)
    assert (check_status(sandbox, WEST, "endpoint"), check_status(sandbox, WEST, "gate")) == ("Failure", "Success")
    assert check_status(sandbox, WEST) == "Failure"
    assert check_status(sandbox, EAST) == "Success"


def test_an_evacuated_region_fails_its_gate_check_but_its_endpoint_still_answers(sandbox):
    put_evacuate(sandbox, EAST, 1)
    assert (check_status(sandbox, EAST, "endpoint"), check_status(sandbox, EAST, "gate")) == ("Success", "Failure")


def test_each_record_uses_a_calculated_check_of_endpoint_and_gate(sandbox):
    route53 = sandbox.client("route53", EAST)
    checks = {c["CallerReference"]: c for c in route53.list_health_checks()["HealthChecks"]}
    for region in (EAST, WEST):
        serving = checks[health_check_reference("serving", region)]["HealthCheckConfig"]
        children = {checks[health_check_reference(kind, region)]["Id"] for kind in ("endpoint", "gate")}
        assert (serving["Type"], set(serving["ChildHealthChecks"]), serving["HealthThreshold"]) == (
            "CALCULATED", children, 2)


def test_with_both_regions_unhealthy_route53_answers_the_primary(sandbox, sandbox_faults):
    put_evacuate(sandbox, EAST, 1)
    sandbox_faults.region_down(WEST)
    assert dns_answer(sandbox) == [sandbox.topology.traffic.endpoints[EAST]]


def test_route53_dns_servers_answer_like_test_dns_answer(sandbox):
    put_evacuate(sandbox, EAST, 1)
    assert sandbox.status()["traffic"]["dns_answer"] == WEST
    assert dns_answer(sandbox) == [sandbox.topology.traffic.endpoints[WEST]]


def test_a_gate_closed_in_a_region_that_goes_dark_keeps_its_status_and_dns_on_that_dark_primary(
        sandbox, sandbox_faults):
    put_evacuate(sandbox, WEST, 1)  # the DR region's gate, kept in the primary
    sandbox_faults.region_down(EAST)
    traffic = sandbox.status()["traffic"]
    assert traffic["regions"][WEST] == {"endpoint_up": True, "gate_open": False}
    assert traffic["dns_answer"] == EAST
