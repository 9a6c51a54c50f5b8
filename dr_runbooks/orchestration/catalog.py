"""The runbooks that run on Step Functions, and what the Lambda handler needs to know about each beyond its plan.

The plan says what the steps are; a run also needs its preflight (what a scheduled run, which has no operator at a
keyboard, checks before anything moves), the label its run ids carry, how its journal becomes evidence, where its
state machine is deployed, and which region's machine may run it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from dr_runbooks.drills import gameday, gameday_plan, running
from dr_runbooks.drills.plans import restore_drill
from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.journal import RunRecord
from dr_runbooks.engine.plan import Plan
from dr_runbooks.evidence.record import EvidenceRecord
from dr_runbooks.runbooks import driver
from dr_runbooks.runbooks.estate import Refused
from dr_runbooks.runbooks.plans import PLANS
from dr_runbooks.runbooks.preflight import PREFLIGHTS
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology
from dr_runbooks.verify import plan as verify_plan

Preflight = Callable[[AwsSession, Topology, str], dict[str, Any]]
Evidence = Callable[[RunRecord, Topology, bool], EvidenceRecord]
#: Chart files a restore drill checks against their SHA-256 unless told otherwise (`drctl drill restore --sample`).
DEFAULT_SAMPLE = 100


def restore_preflight(_aws: AwsSession, topology: Topology, region: str) -> dict[str, Any]:
    """A restore drill nobody configured by hand (a scheduled one): the latest recovery points of the DR vault and the
    default sample of charts; refused (nothing changed) outside the DR region, whose vault holds the copies."""
    if region != topology.dr_region:
        raise Refused(f"a restore drill runs in the DR region {topology.dr_region}, not {region}")
    return {"recovery_points": [], "random": False, "sample": DEFAULT_SAMPLE}


@dataclass(frozen=True)
class Orchestrated:
    plan: Callable[[], Plan]
    preflight: Preflight
    evidence: Evidence
    #: The run id's label (lowercase letters: `engine.journal.RUN_ID_PATTERN`).
    label: str
    #: "both": a machine in each region; "dr": only in the DR region (the drills, which restore and verify there).
    deployed: Literal["both", "dr"] = "both"
    #: Whether a machine may run it toward the other region. Only runbooks that need both regions to answer anyway
    #: (a planned switchover, a failback); a failover runs in the region it fails over to, whose APIs it alone calls.
    any_region: bool = False
    #: What must happen when a run ends, whatever its outcome (a restore drill's scratch resources go away).
    after: Callable[[RunContext], None] | None = None


RUNBOOKS: dict[str, Orchestrated] = {
    "switchover": Orchestrated(PLANS["switchover"], PREFLIGHTS["switchover"], driver.evidence_record, "switchover",
                               any_region=True),
    "failover": Orchestrated(PLANS["failover"], PREFLIGHTS["failover"], driver.evidence_record, "failover"),
    "failback": Orchestrated(PLANS["failback"], PREFLIGHTS["failback"], driver.evidence_record, "failback",
                             any_region=True),
    "restore-drill": Orchestrated(restore_drill, restore_preflight, running.restore_evidence, "restore",
                                  deployed="dr", after=running.ensure_torn_down),
    "game-day": Orchestrated(gameday_plan.game_day, gameday_plan.game_day_preflight, gameday.game_day_evidence,
                             gameday_plan.RUN_LABEL, deployed="dr"),
    "verify-replication": Orchestrated(verify_plan.verify_replication, verify_plan.verify_preflight,
                                       verify_plan.verify_evidence, "verify", deployed="dr"),
}


def deployed_in(region: str, dr_region: str) -> dict[str, Orchestrated]:
    """The runbooks whose state machines `region` has."""
    return {name: runbook for name, runbook in RUNBOOKS.items() if runbook.deployed == "both" or region == dr_region}
