"""The failover game day: switch over to the DR region, verify, serve from it, switch back; RTO and RPO per leg.

Each leg is the on-call `switchover` runbook itself (same plan, preflight, lock, journal and evidence), so the game
day tests what on-call would run. Before anything moves, the availability budget decides: the month's remaining
budget (from the evidence chain) must absorb the expected downtime, the RTO target (the config already refuses an RTO
target larger than a whole month's budget). The downtime measured (both legs' RTO) is charged to the budget.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from dr_runbooks.drills.fingerprint import connect
from dr_runbooks.engine.journal import LOCAL_RUNS, RunRecord
from dr_runbooks.engine.runner import Listener
from dr_runbooks.evidence.budget import AvailabilityBudget, availability_budget
from dr_runbooks.evidence.record import EvidenceRecord, Identity, Objective, RunError, Step, Verification
from dr_runbooks.evidence.store import EvidenceLog, LocalEvidenceDir
from dr_runbooks.runbooks import canary, driver
from dr_runbooks.runbooks.estate import Refused
from dr_runbooks.runbooks.preflight import PREFLIGHTS
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology
from dr_runbooks.verify.compare import ReplicationComparison, Side

LEGS = 2


def check_budget(topology: Topology, evidence_dir: Path, as_of: datetime | None = None) -> AvailabilityBudget:
    """The month's budget, or a refusal when what is left cannot absorb a game day's expected downtime."""
    chain = EvidenceLog(topology.env_name, [LocalEvidenceDir(evidence_dir)]).load_chain()
    budget = availability_budget(chain, topology.availability_target, as_of or datetime.now(UTC))
    if budget.month.left_minutes < topology.rto_minutes:
        raise Refused(
            f"availability budget: {max(budget.month.left_minutes, 0):.1f} min of downtime left in "
            f"{budget.month.label}, a game day may take the RTO target of {topology.rto_minutes} min: "
            "nothing changed")
    return budget


@dataclass
class GameDay:
    legs: list[RunRecord] = field(default_factory=list)
    leg_evidence: list[EvidenceRecord] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    verifications: list[Verification] = field(default_factory=list)
    errors: list[RunError] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return not self.errors and len(self.legs) == LEGS and all(leg.status == "succeeded" for leg in self.legs)


def _timed(game: GameDay, name: str, work: Callable[[], str]) -> bool:
    """Run `work` as one step of the game day's timeline; its return value is the step's detail."""
    started = datetime.now(UTC)
    try:
        detail, outcome = work(), "succeeded"
    except Exception as error:  # a failed check is a result of the game day, recorded, not a crash
        detail, outcome = f"{type(error).__name__}: {error}", "failed"
        game.errors.append(RunError(message=detail, step=name))
    game.steps.append(Step(name=name, started_at=started, ended_at=datetime.now(UTC), outcome=outcome,
                           detail=detail))
    return outcome == "succeeded"


def _verified(game: GameDay, check: Verification) -> str:
    """Keep `check` for the record; a failed one fails its timeline step with the check's detail."""
    game.verifications.append(check)
    if check.result == "failed":
        raise RuntimeError(f"{check.what}: {check.detail}")
    return f"{check.what}: {check.checked} checked"


def _leg(aws: AwsSession, topology: Topology, target: str, operator: str, game: GameDay, local_dir: Path,
         evidence_dir: Path, sandbox: bool, listener: Listener | None) -> bool:
    seen = PREFLIGHTS["switchover"](aws, topology, target)
    ctx = driver.new_context(aws, topology, "switchover", target, seen, operator, local_dir)
    run = driver.run(ctx, listener)
    game.legs.append(run)
    game.leg_evidence.append(driver.write_evidence(ctx, sandbox, evidence_dir))
    ended = datetime.fromtimestamp(run.ended_at or run.started_at, UTC)
    game.steps.append(Step(name=f"switchover-to-{target}", started_at=datetime.fromtimestamp(run.started_at, UTC),
                           ended_at=ended, outcome="succeeded" if run.status == "succeeded" else "failed",
                           detail=f"run {run.run_id}" + (f": {run.error}" if run.error else "")))
    if run.status != "succeeded":
        game.errors.append(RunError(message=f"switchover to {target} failed: {run.error}",
                                    step=f"switchover-to-{target}"))
    return run.status == "succeeded"


def verify_archives(aws: AwsSession, topology: Topology, writer_region: str) -> Verification:
    """The writer's chart archive and its replica hold the same current versions (listing comparison)."""
    replica_region = topology.partner(writer_region)
    source = Side(aws.client("s3", writer_region), topology.in_region(writer_region).chart_bucket)
    replica = Side(aws.client("s3", replica_region), topology.in_region(replica_region).chart_bucket)
    report = ReplicationComparison(source, replica).run()
    return Verification(
        what=f"chart archive {replica} replicates {source}", how="ListObjectsV2 of both buckets merged key by key",
        result="passed" if report.in_sync else "failed", checked=report.compared,
        mismatched=len(report.differences),
        detail=", ".join(f"{kind}: {count}" for kind, count in sorted(report.counts().items())) or None)


def serve(aws: AwsSession, topology: Topology, region: str, run_id: str) -> Verification:
    """The region serves: a chart is read and checked against its scan row, and a write lands on its writer."""
    here = topology.in_region(region)
    endpoint = canary.db_endpoint(aws.client("rds", region), aws.client("secretsmanager", region),
                                  here.db_cluster_id, topology.db_secret_name, topology.database_name)
    with connect(endpoint) as connection:
        row = connection.execute("SELECT object_key, sha256 FROM scans ORDER BY scan_id LIMIT 1").fetchone()
    canary.PostgresCanary().write(endpoint, f"{run_id}-serve", region)
    checked = 0
    if row is not None:
        body = aws.client("s3", region).get_object(Bucket=here.chart_bucket, Key=row[0])["Body"].read()
        if hashlib.sha256(body).hexdigest() != row[1]:
            raise RuntimeError(f"chart {row[0]} read in {region} does not match its scan row's SHA-256")
        checked = 1
    return Verification(what=f"{region} serves reads and writes",
                        how="a chart file read and checked against its scan row; a canary row written on the writer",
                        result="passed", checked=checked + 1)


def run_game_day(aws: AwsSession, topology: Topology, operator: str, *, evidence_dir: Path,
                 local_dir: Path = LOCAL_RUNS, sandbox: bool = False, listener: Listener | None = None,
                 ) -> tuple[GameDay, EvidenceRecord]:
    """Both legs and the checks between them; a refusal of the first leg's preflight propagates (nothing moved)."""
    game = GameDay()
    started = datetime.now(UTC)
    dr, primary = topology.dr_region, topology.primary_region
    run_id = f"{started:%Y%m%dT%H%M%SZ}-gameday-{dr}-{secrets.token_hex(3)}"
    if _leg(aws, topology, dr, operator, game, local_dir, evidence_dir, sandbox, listener):
        _timed(game, "verify-replication", lambda: _verified(game, verify_archives(aws, topology, dr)))
        _timed(game, "serve-from-dr", lambda: _verified(game, serve(aws, topology, dr, run_id)))
        try:  # the estate is in DR now: a refusal to come back is a failed game day, not a clean refusal
            _leg(aws, topology, primary, operator, game, local_dir, evidence_dir, sandbox, listener)
        except Refused as error:
            game.errors.append(RunError(message=f"switchover back to {primary} refused: {error}"))
    record = game_day_evidence(game, topology, run_id, operator, aws.mfa, started, sandbox)
    return game, record


def _worst(records: list[EvidenceRecord], which: str, target: float, how: str) -> Objective:
    measured = [getattr(record, which).measured_seconds for record in records if getattr(record, which)]
    known = [value for value in measured if value is not None]
    return Objective(measured_seconds=max(known) if known and len(known) == LEGS else None, target_seconds=target,
                     how=how)


def game_day_evidence(game: GameDay, topology: Topology, run_id: str, operator: str, mfa: bool,
                      started: datetime, sandbox: bool) -> EvidenceRecord:
    legs = [Verification(
        what=f"leg {number}: switchover to {record.to_region} ({record.run_id})",
        how="RTO from the leg's journal, RPO from its canary row and object",
        result="passed" if record.passed else "failed", checked=1,
        detail=f"RTO {record.rto.measured_seconds if record.rto else None} s, "
               f"RPO {record.rpo.measured_seconds if record.rpo else None} s")
        for number, record in enumerate(game.leg_evidence, start=1)]
    rto = _worst(game.leg_evidence, "rto", topology.rto_minutes * 60, "the slower leg's RTO (each leg's journal)")
    downtime = sum(record.rto.measured_seconds or 0.0 for record in game.leg_evidence if record.rto)
    return EvidenceRecord(
        run_id=run_id, kind="failover-drill", environment=topology.env_name, from_region=topology.primary_region,
        to_region=topology.dr_region, identity=Identity(caller_arn=operator, account=topology.account, mfa_used=mfa),
        started_at=started, ended_at=max([started] + [step.ended_at for step in game.steps]),
        outcome="succeeded" if game.succeeded else "failed", timeline=tuple(game.steps), rto=rto,
        rpo=_worst(game.leg_evidence, "rpo", topology.rpo_minutes * 60, "the larger leg's RPO (canaries)"),
        downtime_seconds=downtime, verifications=tuple(legs + game.verifications), errors=tuple(game.errors),
        sandbox=sandbox)
