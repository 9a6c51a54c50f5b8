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
from dr_runbooks.drills.plans import GAME_DAY, GAME_DAY_LABEL, game_day
from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.journal import LOCAL_RUNS, Journal, RunRecord, new_run_id
from dr_runbooks.engine.runner import Listener, execute
from dr_runbooks.evidence.record import EvidenceRecord
from dr_runbooks.runbooks.estate import Refused
from dr_runbooks.runbooks.preflight import PREFLIGHTS
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology


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
    run = RunRecord(run_id=new_run_id(GAME_DAY_LABEL, region), runbook=GAME_DAY, env_name=topology.env_name,
                    target_region=region, params=params, operator=operator, mfa=aws.mfa)
    journal = Journal(aws, region, topology.in_region(region).runbook_table, local_dir)
    return RunContext(run=run, topology=topology, aws=aws, journal=journal)


def run_game_day(ctx: RunContext, listener: Listener | None = None) -> RunRecord:
    """Run (or resume) the game day here; it takes no lock, each leg takes its own."""
    return execute(game_day(), ctx, None, listener)
