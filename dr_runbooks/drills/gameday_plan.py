"""The failover game day as an engine plan, and the preflight a run with no operator makes before anything moves.

Each leg is a whole on-call `switchover` run (`Step.child`: its own lock, journal and evidence), so the game day takes
no lock itself (`locks=False`). The checks in DR record their result and never raise, so the switch back happens
whatever they found; `verdict`, last, fails the run naming what failed. A refused or failed first leg fails the run
before anything else starts: nothing else moved.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from dr_runbooks.drills.gameday import check_budget, evidence_in_buckets
from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.journal import LOCAL_RUNS, Journal, RunRecord, new_run_id
from dr_runbooks.engine.plan import ChildRun, Plan, Step
from dr_runbooks.engine.runner import Listener, execute
from dr_runbooks.evidence.record import EvidenceRecord
from dr_runbooks.runbooks.estate import Refused
from dr_runbooks.runbooks.preflight import PREFLIGHTS
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology

RUNBOOK = "game-day"
#: The run-id label of a game day (RUN_ID_PATTERN: lowercase letters only).
RUN_LABEL = "gameday"
#: A leg waits for a whole switchover, replication and DNS included.
LEG_TIMEOUT_SECONDS = 3600
#: The archive check fits one Lambda invocation (15 min, less the hand-back margin of a polled step); an archive too
#: large to list in that time is verified by S3 Inventory (`drctl verify replication --inventory`), not here.
CHECK_TIMEOUT_SECONDS = 780
_ACTIONS = "dr_runbooks.drills.gameday"
_LEG = "dr_runbooks.drills.legs:switchover_leg"


def game_day() -> Plan:
    return Plan(
        runbook=RUNBOOK,
        description="switch over to the DR region, verify and serve there, switch back; RTO and RPO per leg",
        locks=False,
        steps=(
            Step(name="switchover-to-dr", action=_LEG, changes=True, timeout_seconds=LEG_TIMEOUT_SECONDS,
                 description="the on-call switchover to the DR region, as its own run",
                 child=ChildRun(runbook="switchover", target="dr")),
            Step(name="verify-replication", action=f"{_ACTIONS}:verify_replication", depends_on=("switchover-to-dr",),
                 description="the DR archive and its replica hold the same current versions",
                 timeout_seconds=CHECK_TIMEOUT_SECONDS,
                 calls=("s3.ListObjectsV2({target_region}: {target_bucket})",
                        "s3.ListObjectsV2({source_region}: {source_bucket})")),
            Step(name="serve-from-dr", action=f"{_ACTIONS}:serve_from_dr", depends_on=("switchover-to-dr",),
                 description="a chart read and checked against its scan row, a canary row written, in DR",
                 database="target", changes=True,
                 calls=("secretsmanager.GetSecretValue({target_region}: {db_secret_name})",
                        "s3.GetObject({target_region}: {target_bucket})", "postgres INSERT canary row")),
            Step(name="switchover-to-primary", action=_LEG, changes=True, timeout_seconds=LEG_TIMEOUT_SECONDS,
                 depends_on=("verify-replication", "serve-from-dr"),
                 description="the on-call switchover back to the primary region, as its own run",
                 child=ChildRun(runbook="switchover", target="primary")),
            Step(name="verdict", action=f"{_ACTIONS}:verdict", depends_on=("switchover-to-primary",),
                 description="fail the game day if a check in DR failed, naming it"),
        ),
    )


def game_day_preflight(aws: AwsSession, topology: Topology, region: str, *,
                       evidence: Path | Iterable[EvidenceRecord] | None = None,
                       as_of: datetime | None = None) -> dict[str, Any]:
    """The run's params, or `Refused` with nothing changed: the availability budget (from `evidence`: a local chain
    dir or records; by default the evidence buckets of both regions, a region not answering skipped), the first
    leg's switchover preflight, and the run id of each leg."""
    if region != topology.dr_region:
        raise Refused(f"a game day runs from the DR region {topology.dr_region}, not {region}")
    budget = check_budget(topology, evidence_in_buckets(aws, topology) if evidence is None else evidence, as_of)
    seen = PREFLIGHTS["switchover"](aws, topology, topology.dr_region)
    regions = {"dr": topology.dr_region, "primary": topology.primary_region}
    legs = {step.name: new_run_id(step.child.runbook, regions[step.child.target])
            for step in game_day().steps if step.child is not None}
    return {"budget_month": budget.month.label, "budget_left_minutes": round(budget.month.left_minutes, 3),
            "first_leg_preflight": seen, "legs": legs}


def new_game_day_context(aws: AwsSession, topology: Topology, params: dict[str, Any], operator: str,
                         local_dir: Path = LOCAL_RUNS) -> RunContext:
    """A fresh game-day run in the DR region (its journal in DR's runbook table) with the preflight's `params`."""
    region = topology.dr_region
    run = RunRecord(run_id=new_run_id(RUN_LABEL, region), runbook=RUNBOOK, env_name=topology.env_name,
                    target_region=region, params=params, operator=operator, mfa=aws.mfa)
    journal = Journal(aws, region, topology.in_region(region).runbook_table, local_dir)
    return RunContext(run=run, topology=topology, aws=aws, journal=journal)


def run_game_day(ctx: RunContext, listener: Listener | None = None) -> RunRecord:
    """Run (or resume) the game day here; it takes no lock, each leg takes its own."""
    return execute(game_day(), ctx, None, listener)
