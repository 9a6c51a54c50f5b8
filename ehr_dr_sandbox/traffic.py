"""Traffic: the gate alarms evaluate and the Route 53 health checks report, which moto does neither of.

The design (`topology.TrafficGate`): the record of a region is healthy only while its endpoint answers AND its gate
alarm (kept in the partner region) is OK; runbooks set the gates by putting `Evacuate=1`/`0` into the gate metric in
the alarm's region (the rule is `dr_runbooks.observe.traffic`). Here, each behaviour as AWS documents it:

- **Gate alarms** are evaluated whenever metric data arrives in their region (`PutMetricData` observed): ALARM when the
  latest `Evacuate` datapoint is >= 1, OK when it is below. `TreatMissingData=ignore`: with no datapoint the alarm
  keeps its state (CloudWatch User Guide, "Configuring how CloudWatch alarms treat missing data"). moto's alarms never
  evaluate otherwise.
- **Health checks** (as the stacks build them, three per region, found by their CallerReference,
  `provision.health_check_reference`, since moto drops a CLOUDWATCH_METRIC check's AlarmIdentifier):
  `GetHealthCheckStatus` of the *endpoint* check reports Success while the region is not dark (a `region-down`
  fault), of the *gate* check while the gate alarm is not in ALARM, and of the *serving* check (CALCULATED, the
  record's) when both are. A gate check whose alarm never had data, or whose alarm's region is dark (Route 53 gets no
  data), keeps its last known status, healthy when it never had one (`InsufficientDataHealthStatus=LastKnownStatus`,
  Route 53 API Reference, "HealthCheckConfig").
- **`TestDNSAnswer`** answers what Route 53 resolves the failover record to: the PRIMARY record while it is healthy,
  else the SECONDARY while that is healthy, else the PRIMARY: with no healthy record Route 53 treats all as healthy
  (Route 53 Developer Guide, "Active-active and active-passive failover" and "How Amazon Route 53 chooses records when
  health checking is configured").

Route 53's API signs for us-east-1, so a `region-down` of us-east-1 takes these reads with it, as in AWS. Its DNS
servers do not go dark with it: the `traffic` report's `dns_answer` is what a resolver gets meanwhile (the same
answer as `TestDNSAnswer`, read past the fault).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from dr_runbooks.topology import TRAFFIC_GATE_DIMENSION, TRAFFIC_GATE_METRIC, TRAFFIC_GATE_NAMESPACE, TrafficGate
from ehr_dr_sandbox.context import SandboxContext
from ehr_dr_sandbox.dispatch import Call, Forward, Registry, Reply
from ehr_dr_sandbox.provision import HEALTH_CHECK_KINDS, health_check_reference

ROUTE53_XMLNS = "https://route53.amazonaws.com/doc/2013-04-01/"
STATUS_TEXT = {
    "endpoint": "the endpoint answers",
    "gate": "the gate alarm is not in ALARM",
    "serving": "the endpoint answers and the gate alarm is not in ALARM",
}
#: Route 53's checkers report from several regions; the sandbox's all agree.
CHECKER_REGIONS = ("us-east-1", "us-west-1", "eu-west-1")


class Traffic:
    def __init__(self, context: SandboxContext):
        self.context = context
        traffic = context.topology.traffic
        self.gates: dict[str, TrafficGate] = dict(traffic.gates) if traffic else {}
        self.last_known_healthy: dict[str, bool] = dict.fromkeys(self.gates, True)

    def evaluate_gates(self, alarm_region: str) -> None:
        """Set each gate alarm kept in `alarm_region` from the latest gate datapoint (none: keep the state)."""
        cloudwatch = self.context.backend("cloudwatch", alarm_region)
        for gate in self.gates.values():
            if gate.alarm_region != alarm_region or gate.alarm_name not in cloudwatch.alarms:
                continue
            latest = self._latest(cloudwatch, gate)
            if latest is None:
                continue
            state = "ALARM" if latest >= 1 else "OK"
            if cloudwatch.alarms[gate.alarm_name].state_value != state:
                cloudwatch.set_alarm_state(gate.alarm_name, f"sandbox: latest {TRAFFIC_GATE_METRIC} is {latest}",
                                           "{}", state)
            self.last_known_healthy[gate.region] = state == "OK"

    @staticmethod
    def _latest(cloudwatch: Any, gate: TrafficGate) -> float | None:
        points = [
            datum for datum in cloudwatch.metric_data
            if datum.namespace == TRAFFIC_GATE_NAMESPACE and datum.name == TRAFFIC_GATE_METRIC
            and any(d.name == TRAFFIC_GATE_DIMENSION and d.value == gate.dimension_value for d in datum.dimensions)
            and hasattr(datum, "value")
        ]
        return float(max(points, key=lambda datum: datum.timestamp).value) if points else None

    def gate_open(self, region: str) -> bool:
        """The gate check's status: the alarm's state, or the last known status while the alarm's region is dark or
        the alarm has no data (healthy when there never was one)."""
        gate = self.gates[region]
        if gate.alarm_region in self.context.down_regions:
            return self.last_known_healthy[region]
        alarm = self.context.backend("cloudwatch", gate.alarm_region).alarms.get(gate.alarm_name)
        state = alarm.state_value if alarm else "INSUFFICIENT_DATA"
        if state != "INSUFFICIENT_DATA":
            self.last_known_healthy[region] = state == "OK"
        return self.last_known_healthy[region]

    def endpoint_up(self, region: str) -> bool:
        return region not in self.context.down_regions

    def healthy(self, kind: str, region: str) -> bool:
        if kind == "endpoint":
            return self.endpoint_up(region)
        if kind == "gate":
            return self.gate_open(region)
        return self.endpoint_up(region) and self.gate_open(region)

    def check_of(self, health_check_id: str) -> tuple[str, str] | None:
        """(kind, region) of one of the estate's health checks, or None for any other."""
        check = self.context.backend("route53", "us-east-1").health_checks.get(health_check_id)
        if check is None:
            return None
        return next(((kind, region) for kind in HEALTH_CHECK_KINDS for region in self.gates
                     if check.caller_reference == health_check_reference(kind, region)), None)

    def report(self) -> dict[str, Any]:
        """Each region's health as Route 53 sees it, and what its DNS servers answer (also while us-east-1 is dark)."""
        answer = _failover_answer(self.records(), self)
        endpoints = {endpoint: region for region, endpoint in self.context.topology.traffic.endpoints.items()} \
            if self.context.topology.traffic else {}
        return {"regions": {region: {"endpoint_up": self.endpoint_up(region), "gate_open": self.gate_open(region)}
                            for region in self.gates},
                "dns_answer": next((endpoints[value] for value in answer if value in endpoints), None)}

    def records(self, zone_id: str | None = None) -> list[Any]:
        """The application's failover records (in `zone_id`, or in the estate's hosted zone)."""
        traffic = self.context.topology.traffic
        assert traffic is not None
        zones = self.context.backend("route53", "us-east-1").zones
        zone = zones.get(zone_id) if zone_id else next(
            (zone for zone in zones.values() if zone.name.rstrip(".") == traffic.hosted_zone_name), None)
        if zone is None:
            return []
        return [record for record in zone.rrsets if record.name.rstrip(".") == traffic.record_name.rstrip(".")
                and record.type == "CNAME"]


def install(registry: Registry, context: SandboxContext) -> None:
    traffic = Traffic(context)
    if not traffic.gates:
        return

    @registry.observe("monitoring", "PutMetricData")
    def evaluate(call: Call, reply: Reply) -> None:
        traffic.evaluate_gates(call.region)

    @registry.intercept("route53", "GetHealthCheckStatus")
    def health_check_status(call: Call, forward: Forward) -> Reply:
        check = traffic.check_of(call.uri_params.get("HealthCheckId", ""))
        if check is None:
            return forward()
        kind, region = check
        status = (f"Success: {STATUS_TEXT[kind]}" if traffic.healthy(kind, region)
                  else f"Failure: not ({STATUS_TEXT[kind]})")
        checked = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        observations = "".join(
            f"<HealthCheckObservation><Region>{checker}</Region><IPAddress>127.0.0.1</IPAddress><StatusReport>"
            f"<Status>{escape(status)}</Status><CheckedTime>{checked}</CheckedTime></StatusReport>"
            "</HealthCheckObservation>"
            for checker in CHECKER_REGIONS
        )
        return _route53_reply("GetHealthCheckStatusResponse",
                              f"<HealthCheckObservations>{observations}</HealthCheckObservations>")

    @registry.intercept("route53", "TestDNSAnswer")
    def test_dns_answer(call: Call, forward: Forward) -> Reply:
        zone_id = (call.param("hostedzoneid") or "").rpartition("/")[2]
        name = (call.param("recordname") or "").rstrip(".")
        record_type = call.param("recordtype") or ""
        zone = context.backend("route53", "us-east-1").zones.get(zone_id)
        if zone is None:
            return Reply.error(call, "NoSuchHostedZone", f"No hosted zone found with ID: {zone_id}", 404)
        records = [r for r in zone.rrsets if r.name.rstrip(".") == name and r.type == record_type]
        answer = _failover_answer(records, traffic)
        data = "".join(f"<RecordDataEntry>{escape(value)}</RecordDataEntry>" for value in answer)
        return _route53_reply("TestDNSAnswerResponse", (
            f"<Nameserver>ns-1.awsdns-sandbox.org</Nameserver><RecordName>{escape(name)}</RecordName>"
            f"<RecordType>{escape(record_type)}</RecordType><RecordData>{data}</RecordData>"
            f"<ResponseCode>{'NOERROR' if answer else 'NXDOMAIN'}</ResponseCode><Protocol>UDP</Protocol>"))

    registry.report("traffic")(traffic.report)


def _failover_answer(records: list[Any], traffic: Traffic) -> list[str]:
    """The values Route 53 answers for these records: failover by health, or the plain record."""
    def healthy(record: Any) -> bool:
        check = traffic.check_of(record.health_check_id) if record.health_check_id else None
        return traffic.healthy(*check) if check else True

    by_role = {record.failover: record for record in records if record.failover}
    if not by_role:
        chosen = records[0] if records else None
    elif "PRIMARY" in by_role and healthy(by_role["PRIMARY"]):
        chosen = by_role["PRIMARY"]
    elif "SECONDARY" in by_role and healthy(by_role["SECONDARY"]):
        chosen = by_role["SECONDARY"]
    else:
        chosen = by_role.get("PRIMARY") or by_role.get("SECONDARY")
    if chosen is None:
        return []
    return [record["Value"] if isinstance(record, dict) else str(record) for record in chosen.records]


def _route53_reply(element: str, inner: str) -> Reply:
    body = f'<?xml version="1.0" encoding="UTF-8"?><{element} xmlns="{ROUTE53_XMLNS}">{inner}</{element}>'.encode()
    return Reply(200, [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))], body)
