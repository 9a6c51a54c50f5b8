"""DNS after the on-call runbooks, as on-call runs them: a game day must not strand the next failover's DNS on the
dead region, a failback back to the primary with the DR region dark must reach DNS, and status never counts a gate it
cannot read as open."""

from __future__ import annotations

import json
from collections.abc import Callable

from click.testing import Result

from dr_runbooks.evidence.record import EvidenceRecord
from dr_runbooks.evidence.store import DEFAULT_EVIDENCE_DIR, EvidenceLog, LocalEvidenceDir
from dr_runbooks.observe import probes
from dr_runbooks.observe.traffic import GATE_RECORD_PREFIX, write_gate_record
from dr_runbooks.topology import TRAFFIC_RECORD_TTL_SECONDS
from ehr_dr_sandbox.api import Sandbox
from ehr_dr_sandbox.faults import FaultsClient

from .conftest import MFA, report_lag, wait_connected

PRIMARY, DR = "us-east-1", "us-west-1"


def writer(sandbox: Sandbox) -> str:
    found = probes.global_cluster(sandbox.client("rds", DR), sandbox.topology.global_cluster_id).writer()
    assert found is not None
    return found.region


def resolved(sandbox: Sandbox) -> str | None:
    """What a resolver gets from Route 53's DNS servers (answering while us-east-1's API is dark)."""
    return sandbox.status()["traffic"]["dns_answer"]


def route53_answer(sandbox: Sandbox) -> str:
    """Route 53's TestDNSAnswer (its API, in us-east-1), as the region whose endpoint it answers."""
    traffic = sandbox.topology.traffic
    route53 = sandbox.client("route53", PRIMARY)
    zone = route53.list_hosted_zones_by_name(DNSName=traffic.hosted_zone_name)["HostedZones"][0]["Id"]
    data = route53.test_dns_answer(HostedZoneId=zone, RecordName=traffic.record_name, RecordType="CNAME")["RecordData"]
    return {endpoint: region for region, endpoint in traffic.endpoints.items()}[data[0]]




def evidence(sandbox: Sandbox, run_id: str) -> EvidenceRecord:
    chain = EvidenceLog(sandbox.topology.env_name, [LocalEvidenceDir(DEFAULT_EVIDENCE_DIR)]).load_chain()
    return next(record for record in chain if record.run_id == run_id)


def run(drctl: Callable[..., Result], *args: str) -> dict:
    result = drctl(*args, "--yes", "--output", "json", *MFA)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def failover(drctl: Callable[..., Result], sandbox: Sandbox, target: str) -> dict:
    report_lag(sandbox, target, 1.0)
    return run(drctl, "failover", "--to", target, "--accept-data-loss")


def status(drctl: Callable[..., Result]) -> dict:
    result = drctl("status", "--output", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def forget_gate_records(sandbox: Sandbox) -> None:
    """An estate whose runbooks never recorded a gate (deployed before they did)."""
    for region, resources in sandbox.topology.regions.items():
        dynamodb = sandbox.client("dynamodb", region)
        key = {":pk": {"S": f"{GATE_RECORD_PREFIX}{sandbox.topology.env_name}"}}
        items = dynamodb.query(TableName=resources.runbook_table, KeyConditionExpression="pk = :pk",
                               ExpressionAttributeValues=key)
        for item in items["Items"]:
            dynamodb.delete_item(TableName=resources.runbook_table, Key={"pk": item["pk"], "sk": item["sk"]})


def test_status_shows_a_gate_whose_alarm_region_is_dark_as_unknown_not_open(
        drctl: Callable[..., Result], sandbox: Sandbox, sandbox_faults: FaultsClient) -> None:
    forget_gate_records(sandbox)
    sandbox_faults.region_down(PRIMARY)
    report = status(drctl)
    assert report["gates"][DR]["state"] is None  # DR's gate alarm lives in the dark primary
    assert report["gates"][PRIMARY]["state"] == "open"
    assert report["traffic_region"] is None
    assert report["failover_dns"].startswith(f"failover to {DR}: DNS would answer {DR} only if its gate is open")
    text = drctl("status").stdout
    assert f"gate of {DR}: unknown (alarm in {PRIMARY} unreadable" in text


def test_a_failover_that_would_leave_dns_on_the_dark_region_is_flagged_by_its_preflight_and_status(
        drctl: Callable[..., Result], sandbox: Sandbox, sandbox_faults: FaultsClient) -> None:
    """The state the old game day left: the DR region's gate closed in the primary (and, here, recorded in DR)."""
    gate, dr = sandbox.topology.traffic.gates[DR], sandbox.topology.in_region(DR)
    probes.put_gate(sandbox.client("cloudwatch", PRIMARY), gate, evacuate=True)
    write_gate_record(sandbox.client("dynamodb", DR), dr.runbook_table, sandbox.topology.env_name, DR, "closed",
                      "an-old-game-day", 0.0)
    report_lag(sandbox, DR, 1.0)
    sandbox_faults.region_down(PRIMARY)
    try:
        dry = drctl("failover", "--to", DR, "--dry-run", "--output", "json")
        report = status(drctl)
    finally:
        sandbox_faults.region_up(PRIMARY)
        probes.put_gate(sandbox.client("cloudwatch", PRIMARY), gate, evacuate=False)
    assert dry.exit_code == 0, dry.output
    preflight = json.loads(dry.stdout)["preflight"]
    assert preflight["dns_lets_target_in"] is False
    assert preflight["dns_forecast"].startswith(f"failover to {DR}: DNS would stay on {PRIMARY}")
    assert preflight["dns_forecast"] in report["reasons"]


def test_a_failover_after_a_game_day_lets_dns_answer_the_dr_region(
        drctl: Callable[..., Result], sandbox: Sandbox, sandbox_faults: FaultsClient) -> None:
    sandbox.seed(patients=3, files_per_patient=1)
    sandbox.action("replication-drain", timeout=30)
    for region in sandbox.topology.regions:
        report_lag(sandbox, region, 1.0)
    result = drctl("drill", "failover", "--yes", "--output", "json", "--evidence-dir", "evidence", *MFA)
    assert result.exit_code == 0, result.output
    assert writer(sandbox) == PRIMARY
    sandbox_faults.region_down(PRIMARY)
    assert status(drctl)["failover_dns"] == f"failover to {DR}: DNS would answer {DR}"

    summary = failover(drctl, sandbox, DR)

    assert resolved(sandbox) == DR
    assert status(drctl)["traffic_region"] == DR
    assert (summary["dns"]["answer_region"], summary["dns"]["confirmed"]) == (DR, False)
    dns = evidence(sandbox, summary["run_id"]).dns
    assert dns is not None and (dns.answer_region, dns.confirmed) == (DR, False)
    sandbox_faults.region_up(PRIMARY)  # the old primary's endpoint answers again: its closed gate keeps DNS on DR
    assert route53_answer(sandbox) == DR


def test_a_failover_back_to_the_primary_with_the_dr_region_dark_lets_dns_answer_the_primary(
        drctl: Callable[..., Result], sandbox: Sandbox, sandbox_faults: FaultsClient) -> None:
    if writer(sandbox) == PRIMARY:
        sandbox_faults.region_down(PRIMARY)
        failover(drctl, sandbox, DR)
        sandbox_faults.region_up(PRIMARY)
    run(drctl, "failback", "--to", PRIMARY)
    sandbox_faults.region_down(DR)

    summary = failover(drctl, sandbox, PRIMARY)

    assert route53_answer(sandbox) == PRIMARY
    assert (summary["dns"]["answer_region"], summary["dns"]["confirmed"]) == (PRIMARY, True)
    record = evidence(sandbox, summary["run_id"])
    assert record.dns is not None and (record.dns.answer_region, record.dns.confirmed) == (PRIMARY, True)
    assert record.rto is not None and record.rto.measured_seconds >= TRAFFIC_RECORD_TTL_SECONDS  # resolvers' caches
    assert status(drctl)["traffic_region"] == PRIMARY


def test_a_dr_region_back_after_a_failover_to_the_primary_is_let_into_dns_again_before_anyone_fails_back(
        drctl: Callable[..., Result], sandbox: Sandbox, sandbox_faults: FaultsClient) -> None:
    """A failover to the primary with the DR region dark closes the DR region's gate (kept in the primary); once the
    DR region is back and rebuilt, the writer's heartbeat opens it again, so that if the primary dies before anyone
    ran a failback, the failover to DR still reaches DNS."""
    wait_connected(sandbox)  # an estate at rest: an earlier test's failover may still be rebuilding
    if writer(sandbox) == PRIMARY:
        sandbox_faults.region_down(PRIMARY)
        failover(drctl, sandbox, DR)
        sandbox_faults.region_up(PRIMARY)
        wait_connected(sandbox)
    sandbox_faults.region_down(DR)
    failover(drctl, sandbox, PRIMARY)
    sandbox_faults.region_up(DR)  # back, rebuilt by Aurora; nobody runs `drctl failback`
    wait_connected(sandbox)
    beat = sandbox.action("heartbeat-now")
    sandbox_faults.region_down(PRIMARY)

    failover(drctl, sandbox, DR)

    assert resolved(sandbox) == DR, beat
