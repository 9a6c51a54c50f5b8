"""Traffic: the one rule for the gates, what Route 53 answers given them, and what is known of each gate.

How Route 53 decides (AWS, Route 53 Developer Guide):
- failover routing answers the PRIMARY record while it is healthy, else the SECONDARY while that is healthy
  ("Active-active and active-passive failover"); when no record of the group is healthy, Route 53 treats them all as
  healthy ("How Amazon Route 53 chooses records when health checking is configured"), so it answers the PRIMARY;
- here a record is healthy while its endpoint answers AND its gate alarm, kept in the partner region, is OK (a
  CALCULATED check of both, `stacks/traffic.py`); a CLOUDWATCH_METRIC check with
  `InsufficientDataHealthStatus=LastKnownStatus` keeps its last status while the alarm's region is dark, and is healthy
  when it never had one (Route 53 API reference, `HealthCheckConfig.InsufficientDataHealthStatus`).

So a gate can only be changed from its alarm's region, and a gate left closed in the region that later dies stays
closed. `desired_gates` is the rule every runbook step that moves traffic applies, written so that the target of any
future failover can be let into DNS from the region that survives:

- the PRIMARY's gate (its alarm in the DR region) is open while the PRIMARY writes, closed while the DR region writes
  (with the PRIMARY's endpoint back, a healthy PRIMARY would win DNS from the writer);
- the SECONDARY's gate (its alarm in the primary region) is open, except while the PRIMARY writes with the DR region
  dark: then it is closed, so that DNS answers the PRIMARY by the all-unhealthy rule whatever the PRIMARY's own gate,
  stuck in the dark DR region, last said (the failback that re-protects the DR region opens it again).

A failover to the DR region therefore finds its gate open (the primary left it open and went dark), and a failover to
the PRIMARY needs only the SECONDARY's gate, which it can close. The rule is checked over every (writer, dark region)
combination in tests/runbooks/test_gate_rule.py.

What is known of a gate: its alarm's state when its region answers; otherwise the state the runbooks last set, as
recorded in the runbook table of every region a run reached (the last known status Route 53 keeps, when nobody changed
the alarm by hand); otherwise nothing: unknown, never assumed open.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from dr_runbooks.observe import probes
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import GATE_RECORD_PREFIX, Topology

GateState = Literal["open", "closed"]
#: Route 53's API (GetHealthCheckStatus, TestDNSAnswer) is global and signs in us-east-1: it answers only while
#: us-east-1 does. Its DNS servers (the data plane) answer from every edge location regardless.
ROUTE53_REGION = "us-east-1"
#: How long Route 53 may take to carry a gate alarm's new state into its health check and its answers; added to an
#: unconfirmed DNS change (the RTO budget's figure, docs/runbooks.md "RTO budget on AWS").
ROUTE53_EVALUATION_SECONDS = 30


def desired_gates(topology: Topology, writer: str, answering: Iterable[str]) -> dict[str, GateState]:
    """The gate of each region for `writer`, with the regions in `answering` up (the module docstring argues it)."""
    primary, dr = topology.primary_region, topology.dr_region
    return {
        primary: "open" if writer == primary else "closed",
        dr: "closed" if writer == primary and dr not in set(answering) else "open",
    }


def reachable_gates(topology: Topology, gates: Mapping[str, GateState],
                    answering: Iterable[str]) -> dict[str, GateState]:
    """The part of `gates` a run reaching only `answering` can set: a gate is set in its alarm's region."""
    assert topology.traffic is not None
    up = set(answering)
    return {region: state for region, state in gates.items() if topology.traffic.gates[region].alarm_region in up}


def setting_order(writer: str, gates: Mapping[str, GateState]) -> list[str]:
    """Opens before closes, the writer's gate first: never a moment where DNS prefers a region that does not write."""
    return sorted(gates, key=lambda region: (gates[region] != "open", region != writer))


def route53_answer(primary: str, secondary: str, healthy: Mapping[str, bool]) -> str:
    """Failover routing: the PRIMARY while healthy, else the SECONDARY while healthy, else the PRIMARY (no healthy
    record: Route 53 treats all as healthy)."""
    if healthy[primary]:
        return primary
    return secondary if healthy[secondary] else primary


def dns_answers(topology: Topology, endpoints_up: Mapping[str, bool],
                gates: Mapping[str, GateState | None]) -> set[str]:
    """Every region Route 53 may answer with: one when the gates that matter are known, two when an unknown gate
    (None) decides."""
    unknown = sorted(region for region, state in gates.items() if state is None)
    found = set()
    for guess in itertools.product(("open", "closed"), repeat=len(unknown)):
        states = {**gates, **dict(zip(unknown, guess, strict=True))}
        healthy = {region: bool(endpoints_up.get(region)) and states[region] == "open" for region in states}
        found.add(route53_answer(topology.primary_region, topology.dr_region, healthy))
    return found


class GateReading(BaseModel):
    """What is known of the gate of `region` (its alarm kept in `alarm_region`)."""

    region: str
    alarm_region: str
    state: GateState | None
    #: "alarm": read now; "recorded": the state a run last set (the alarm's region does not answer); None: unknown.
    known_from: Literal["alarm", "recorded"] | None
    detail: str

    def describe(self) -> str:
        return f"{self.state or 'unknown'} ({self.detail})"


def gate_of_alarm(state: str) -> GateState:
    """ALARM closes; OK opens; INSUFFICIENT_DATA (the alarm never had data: it ignores missing data) leaves the health
    check with no last known status, which Route 53 counts healthy."""
    return "closed" if state == "ALARM" else "open"


def read_gates(topology: Topology, alarms: Mapping[str, Mapping[str, str] | None],
               records: Mapping[str, Mapping[str, dict[str, Any]] | None]) -> dict[str, GateReading]:
    """Each gate from the alarm states read per region (None: that region did not answer) and, for a gate whose alarm
    could not be read, the newest gate record the other regions hold."""
    assert topology.traffic is not None
    readings = {}
    for region, gate in topology.traffic.gates.items():
        seen = alarms.get(gate.alarm_region)
        if seen is not None and gate.alarm_name in seen:
            state = seen[gate.alarm_name]
            readings[region] = GateReading(region=region, alarm_region=gate.alarm_region, state=gate_of_alarm(state),
                                           known_from="alarm", detail=f"alarm {state} in {gate.alarm_region}")
            continue
        found = [held[region] for where, held in records.items() if held and region in held]
        if found:
            newest = max(found, key=lambda record: record["set_at"])
            readings[region] = GateReading(
                region=region, alarm_region=gate.alarm_region, state=newest["state"], known_from="recorded",
                detail=f"alarm in {gate.alarm_region} unreadable; last set {newest['state']} by {newest['run_id']} "
                       f"at {datetime.fromtimestamp(newest['set_at'], UTC):%Y-%m-%dT%H:%M:%SZ}")
        else:
            readings[region] = GateReading(region=region, alarm_region=gate.alarm_region, state=None, known_from=None,
                                           detail=f"alarm in {gate.alarm_region} unreadable, no run recorded it")
    return readings


def gate_record_key(env_name: str, region: str) -> dict[str, Any]:
    return {"pk": {"S": f"{GATE_RECORD_PREFIX}{env_name}"}, "sk": {"S": region}}


def write_gate_record(dynamodb: Any, table: str, env_name: str, region: str, state: GateState, run_id: str,
                      set_at: float) -> None:
    dynamodb.put_item(TableName=table, Item={
        **gate_record_key(env_name, region), "state": {"S": state}, "run_id": {"S": run_id},
        "set_at": {"N": f"{set_at:.3f}"}})


def gate_records(dynamodb: Any, table: str, env_name: str) -> dict[str, dict[str, Any]]:
    """The gate states recorded in one region's runbook table, by the region each gate admits."""
    items = dynamodb.query(TableName=table, KeyConditionExpression="pk = :pk", ConsistentRead=True,
                           ExpressionAttributeValues={":pk": {"S": f"{GATE_RECORD_PREFIX}{env_name}"}})["Items"]
    return {item["sk"]["S"]: {"state": item["state"]["S"], "run_id": item["run_id"]["S"],
                              "set_at": float(item["set_at"]["N"])} for item in items}


class DnsForecast(BaseModel):
    """What DNS would answer after a failover to `target`, and the sentence on-call reads."""

    target: str
    answers: list[str]
    sentence: str

    @property
    def lets_target_in(self) -> bool | None:
        """True: DNS would answer the target; False: it would not; None: an unknown gate decides."""
        if self.answers == [self.target]:
            return True
        return None if self.target in self.answers else False


def failover_forecast(topology: Topology, target: str, gates: Mapping[str, GateReading]) -> DnsForecast:
    """DNS after a failover to `target`, which reaches only `target`: the gates it can set follow the rule, the others
    stay as known; the source's endpoint is taken as dark (that is why one fails over)."""
    source = topology.partner(target)
    after: dict[str, GateState | None] = {region: reading.state for region, reading in gates.items()}
    after.update(reachable_gates(topology, desired_gates(topology, target, {target}), {target}))
    answers = dns_answers(topology, {target: True, source: False}, after)
    stuck = gates[target]
    if answers == {target}:
        sentence = f"failover to {target}: DNS would answer {target}"
    elif target not in answers:
        sentence = (f"failover to {target}: DNS would stay on {source} ({target}'s gate is closed in "
                    f"{stuck.alarm_region}, which a failover does not call: {stuck.detail})")
    else:
        sentence = (f"failover to {target}: DNS would answer {target} only if its gate is open, unknown: "
                    f"{stuck.detail}; else it stays on {source}")
    return DnsForecast(target=target, answers=sorted(answers), sentence=sentence)


def traffic_now(topology: Topology, reachable: Mapping[str, bool], gates: Mapping[str, GateReading]) -> set[str]:
    """Where DNS answers now: the regions that answer stand for their endpoints."""
    return dns_answers(topology, reachable, {region: reading.state for region, reading in gates.items()})


def gates_seen_from(topology: Topology, region: str, cloudwatch: Any, dynamodb: Any) -> dict[str, GateReading]:
    """The gates as one region alone knows them: the gate alarms it keeps, and the gate records in its runbook table
    for the others (what a failover can know, calling only its target)."""
    assert topology.traffic is not None
    names = [gate.alarm_name for gate in topology.traffic.gates.values() if gate.alarm_region == region]
    alarms = probes.alarm_states(cloudwatch, names)
    records = gate_records(dynamodb, topology.in_region(region).runbook_table, topology.env_name)
    return read_gates(topology, {region: alarms}, {region: records})


def failover_dns_preflight(aws: AwsSession, topology: Topology, target: str) -> dict[str, Any]:
    """The failover preflight's DNS line, from the target region alone (the source may be dark). It warns, never
    refuses: the gate that would keep DNS on the source cannot be changed from the target either way, and the
    promotion still recovers the data tier (docs/runbooks.md, "Traffic gates")."""
    if topology.traffic is None:
        return {"dns_forecast": "traffic is not managed in this environment"}
    try:
        gates = gates_seen_from(topology, target, aws.client("cloudwatch", target, probe=True),
                                aws.client("dynamodb", target, probe=True))
    except (ClientError, BotoCoreError) as error:
        first = (str(error).splitlines() or [type(error).__name__])[0]
        return {"dns_forecast": f"failover to {target}: DNS unknown (cannot read the gates in {target}: {first})",
                "dns_lets_target_in": None}
    forecast = failover_forecast(topology, target, gates)
    return {"dns_forecast": forecast.sentence, "dns_lets_target_in": forecast.lets_target_in,
            "gates": {region: reading.describe() for region, reading in gates.items()}}
