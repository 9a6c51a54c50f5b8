"""The state of both regions, observed concurrently within a time budget, and the one-line verdict.

`drctl status` must answer within 10 s while a region is dark: every probe runs on a probe client (2 s connect, 3 s
read, 2 attempts), all probes of both regions run at once, and whatever has not answered when the budget is spent is
reported as unreachable rather than waited for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import wait
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from dr_runbooks.observe import probes, race, traffic
from dr_runbooks.observe.traffic import GateReading
from dr_runbooks.readiness import scheduled
from dr_runbooks.runbooks import canary, steps
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology

#: Seconds status waits for probes; with the topology read first (at most 2.5 s), the command stays under 10 s.
STATUS_BUDGET_SECONDS = 5.5
#: A backup or cross-region copy older than this makes the estate not ready (the plans back up daily).
BACKUP_MAX_AGE_HOURS = 26


class Probe(BaseModel):
    """One probe's answer, or why there is none."""

    value: Any = None
    error: str | None = None


class RegionReport(BaseModel):
    region: str
    home: str
    reachable: bool
    probes: dict[str, Probe] = Field(default_factory=dict)

    def value(self, name: str) -> Any:
        probe = self.probes.get(name)
        return None if probe is None else probe.value


class EstateReport(BaseModel):
    env_name: str
    observed_at: float
    seconds: float
    rpo_seconds: float
    regions: dict[str, RegionReport]
    writer_region: str | None
    #: Where DNS answers now; None when an unknown gate decides (`traffic` says between what).
    traffic_region: str | None
    #: What is known of each region's gate (its alarm, else the state runbooks recorded, else unknown).
    gates: dict[str, GateReading] = Field(default_factory=dict)
    #: Where DNS answers, in words, and what a failover to the target would do to it.
    dns: str = "traffic not managed"
    failover_dns: str | None = None
    ready: bool
    target_region: str | None
    reasons: list[str]
    #: How fresh the target's copy is (`canary.freshness`, from the newest heartbeat/canary row and object it holds):
    #: what a failover to it now would lose at most.
    dr_freshness: dict[str, Any] | None = None

    @property
    def verdict(self) -> str:
        if self.target_region is None:
            return "NOT READY: " + "; ".join(self.reasons)
        if self.ready:
            return f"READY to fail over to {self.target_region}"
        return f"NOT READY to fail over to {self.target_region}: " + "; ".join(self.reasons)


def _probes(aws: AwsSession, topology: Topology, region: str) -> dict[str, Callable[[], Any]]:
    here = topology.in_region(region)
    partner = topology.in_region(topology.partner(region))

    def client(service: str) -> Any:
        return aws.client(service, region, probe=True)

    def newest_row() -> str | None:
        reader = canary.db_endpoint(client("rds"), client("secretsmanager"), here.db_cluster_id,
                                    topology.db_secret_name, topology.database_name, reader=True)
        found = steps.DB_CANARY.newest(reader)
        return found.isoformat() if found else None

    def newest_object() -> str | None:
        found = canary.newest_object(client("s3"), here.chart_bucket)
        return found.isoformat() if found else None

    gate_alarms = [gate.alarm_name for gate in (topology.traffic.gates.values() if topology.traffic else ())
                   if gate.alarm_region == region]
    return {
        "global_cluster": lambda: probes.global_cluster(client("rds"), topology.global_cluster_id).model_dump(),
        "cluster_status": lambda: probes.db_cluster(client("rds"), here.db_cluster_id)["Status"],
        "lag_seconds": lambda: probes.aurora_lag_seconds(client("cloudwatch"), here.db_cluster_id),
        "s3_replication": lambda: [r.model_dump() for r in probes.s3_replication(
            client("s3"), client("cloudwatch"), here.chart_bucket)],
        "backups": lambda: probes.newest_recovery_points(client("backup"), here.backup_vault,
                                                         f":backup-vault:{partner.backup_vault}"),
        "alarms": lambda: probes.alarm_states(client("cloudwatch"), [*here.alarm_names, *gate_alarms]),
        "gate_records": lambda: traffic.gate_records(client("dynamodb"), here.runbook_table, topology.env_name),
        "newest_row": newest_row,
        "newest_object": newest_object,
        "last_evaluation": lambda: scheduled.last_evaluation(client("cloudwatch"), region),
    }


def observe_estate(aws: AwsSession, topology: Topology, budget_seconds: float = STATUS_BUDGET_SECONDS) -> EstateReport:
    started = time.time()
    futures = race.start({
        (region, name): probe
        for region in topology.regions
        for name, probe in _probes(aws, topology, region).items()
    })
    wait(futures.values(), timeout=budget_seconds)
    regions = {}
    for region, resources in topology.regions.items():
        answers: dict[str, Probe] = {}
        for (where, name), future in futures.items():
            if where != region:
                continue
            if not future.done():
                answers[name] = Probe(error=f"no answer within {budget_seconds:.0f} s")
            elif future.exception() is not None:
                answers[name] = Probe(error=_one_line(future.exception()))
            else:
                answers[name] = Probe(value=future.result())
        reachable = any(probe.error is None for probe in answers.values())
        regions[region] = RegionReport(region=region, home=resources.home, reachable=reachable, probes=answers)
    return _judge(topology, regions, started)


def _one_line(error: BaseException | None) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def _judge(topology: Topology, regions: dict[str, RegionReport], started: float) -> EstateReport:
    writer_region = None
    for report in regions.values():
        cluster = report.value("global_cluster")
        if cluster:
            writer = probes.GlobalCluster.model_validate(cluster).writer()
            writer_region = writer.region if writer else writer_region
            if writer and writer.region == report.region:
                break
    target = topology.partner(writer_region) if writer_region else None
    gates, where, failover_dns, stranded = _traffic(topology, regions, target)
    reasons = _not_ready_because(topology, regions, target) + stranded if target else ["no region reports a writer"]
    freshness = _freshness(regions[target], started) if target else None
    loss = freshness["expected_data_loss_seconds"] if freshness else None
    if loss is not None and loss > topology.rpo_minutes * 60:
        reasons.append(f"the newest heartbeat {target} holds is {loss:.0f} s old, beyond the RPO of "
                       f"{topology.rpo_minutes * 60} s")
    return EstateReport(
        env_name=topology.env_name,
        observed_at=started,
        seconds=time.time() - started,
        rpo_seconds=topology.rpo_minutes * 60,
        regions=regions,
        writer_region=writer_region,
        traffic_region=next(iter(where)) if len(where) == 1 else None,
        gates=gates,
        dns=_where(where, gates) if topology.traffic else "traffic not managed",
        failover_dns=failover_dns,
        ready=not reasons,
        target_region=target,
        reasons=reasons,
        dr_freshness=freshness,
    )


def _traffic(topology: Topology, regions: dict[str, RegionReport], target: str | None,
             ) -> tuple[dict[str, GateReading], set[str], str | None, list[str]]:
    """The gates (an alarm not read is unknown, unless a run recorded the state it set), where DNS answers now (the
    regions that answer stand for their endpoints), what a failover to `target` would do to DNS, and the reason it
    is not ready when that failover could not let the target into DNS."""
    if topology.traffic is None:
        return {}, set(), None, []
    gates = traffic.read_gates(
        topology,
        {region: report.value("alarms") if _answered(report, "alarms") else None for region, report in regions.items()},
        {region: report.value("gate_records") if _answered(report, "gate_records") else None
         for region, report in regions.items()})
    where = traffic.traffic_now(topology, {region: report.reachable for region, report in regions.items()}, gates)
    if target is None:
        return gates, where, None, []
    forecast = traffic.failover_forecast(topology, target, gates)
    return gates, where, forecast.sentence, [] if forecast.lets_target_in is not False else [forecast.sentence]


def _answered(report: RegionReport, name: str) -> bool:
    probe = report.probes.get(name)
    return probe is not None and probe.error is None


def _where(answers: set[str], gates: dict[str, GateReading]) -> str:
    if len(answers) == 1:
        return f"DNS answers {next(iter(answers))}"
    unknown = "; ".join(f"{region}'s gate: {reading.describe()}" for region, reading in gates.items()
                        if reading.state is None)
    return f"DNS answers {' or '.join(sorted(answers))}: unknown ({unknown})"


def _freshness(report: RegionReport, now: float) -> dict[str, Any]:
    """The target's newest row and object, and since when a failover to it now would lose writes (the older)."""
    row, obj = (datetime.fromisoformat(found) if (found := report.value(name)) else None
                for name in ("newest_row", "newest_object"))
    errors = {name: report.probes[name].error for name in ("newest_row", "newest_object")
              if name in report.probes and report.probes[name].error}
    return {"region": report.region, **canary.freshness_of(row, obj, datetime.fromtimestamp(now, UTC)),
            "errors": errors}


def _not_ready_because(topology: Topology, regions: dict[str, RegionReport], target: str) -> list[str]:
    """Why a failover to `target` would not meet its objectives now (empty: ready)."""
    report = regions[target]
    if not report.reachable:
        return [f"{target} does not answer"]
    reasons = []
    status = report.value("cluster_status")
    if status != "available":
        reasons.append(f"cluster in {target} is {status or 'unknown'}")
    lag = report.value("lag_seconds")
    if lag is None:
        reasons.append(f"no Aurora replication lag reported in {target} for 10 min")
    elif lag > topology.rpo_minutes * 60:
        reasons.append(f"Aurora lag {lag:.0f} s exceeds the RPO of {topology.rpo_minutes * 60} s")
    alarms = report.value("alarms") or {}
    firing = sorted(name for name, state in alarms.items() if state == "ALARM" and "evacuate" not in name)
    if firing:
        reasons.append(f"alarms firing in {target}: {', '.join(firing)}")
    backups = report.value("backups") or {}
    if not backups.get("last_copy"):
        reasons.append(f"no cross-region backup copy in {target}'s vault")
    return reasons
