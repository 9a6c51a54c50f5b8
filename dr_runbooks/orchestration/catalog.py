"""The runbooks that run on Step Functions, and what the Lambda handler needs to know about each beyond its plan.

The plan says what the steps are; a run also needs its preflight (what a scheduled run, which has no operator at a
keyboard, checks before anything moves; it may find nothing to do in this region: `Skipped`), the label its run ids
carry, how its journal becomes evidence, where its state machine is deployed, and which region's machine may run it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from dr_runbooks.drills import plans as drills
from dr_runbooks.engine.plan import Plan
from dr_runbooks.lifecycle import plans as lifecycle
from dr_runbooks.runbooks import plans as on_call

if TYPE_CHECKING:
    from dr_runbooks.engine.context import RunContext
    from dr_runbooks.engine.journal import RunRecord
    from dr_runbooks.evidence.record import EvidenceRecord
    from dr_runbooks.session import AwsSession
    from dr_runbooks.topology import Topology

Preflight = Callable[["AwsSession", "Topology", str], dict[str, Any]]
Evidence = Callable[["RunRecord", "Topology", bool], "EvidenceRecord"]


class Skipped(Exception):
    """A preflight found nothing for this region to do (a scheduled retention sync where the database does not
    write): the execution ends succeeded with why, nothing started, rather than failed (a failure pages on-call)."""


def _imported(path: str) -> Callable[..., Any]:
    """`module:function`, imported when first called, as a plan names its steps' actions: the orchestration stack reads
    this catalog (the plans, where each is deployed) without importing every runbook's code, boto3 with it."""
    module, _, name = path.partition(":")

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__qualname__ = call.__name__ = name
    return call


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


_ON_CALL_EVIDENCE = _imported("dr_runbooks.runbooks.driver:evidence_record")
RUNBOOKS: dict[str, Orchestrated] = {
    "switchover": Orchestrated(on_call.switchover, _imported("dr_runbooks.runbooks.preflight:switchover"),
                               _ON_CALL_EVIDENCE, "switchover", any_region=True),
    "failover": Orchestrated(on_call.failover, _imported("dr_runbooks.runbooks.preflight:failover"),
                             _ON_CALL_EVIDENCE, "failover"),
    "failback": Orchestrated(on_call.failback, _imported("dr_runbooks.runbooks.preflight:failback"),
                             _ON_CALL_EVIDENCE, "failback", any_region=True),
    drills.RESTORE_DRILL: Orchestrated(
        drills.restore_drill, _imported("dr_runbooks.drills.running:restore_preflight"),
        _imported("dr_runbooks.drills.running:restore_evidence"), drills.RESTORE_LABEL, deployed="dr",
        after=_imported("dr_runbooks.drills.running:ensure_torn_down")),
    drills.GAME_DAY: Orchestrated(
        drills.game_day, _imported("dr_runbooks.drills.gameday_plan:game_day_preflight"),
        _imported("dr_runbooks.drills.gameday:game_day_evidence"), drills.GAME_DAY_LABEL, deployed="dr"),
    drills.VERIFY_REPLICATION: Orchestrated(
        drills.verify_replication, _imported("dr_runbooks.verify.plan:verify_preflight"),
        _imported("dr_runbooks.verify.plan:verify_evidence"), drills.VERIFY_LABEL, deployed="dr"),
    # Scheduled in both regions: it runs where the records database writes and is skipped in the other.
    lifecycle.RETENTION_SYNC: Orchestrated(
        lifecycle.retention_sync, _imported("dr_runbooks.lifecycle.running:scheduled_sync_preflight"),
        _imported("dr_runbooks.lifecycle.running:evidence"), lifecycle.LABELS[lifecycle.RETENTION_SYNC]),
}


#: Scheduled runs, in each region that has the runbook's state machine (the drills: the DR region; the retention sync:
#: both, skipped where the database does not write): (runbook, prefix of `<prefix>_schedule` and `<prefix>_enabled`).
SCHEDULED = (("restore-drill", "restore_drill"), ("verify-replication", "verify_replication"),
             ("game-day", "game_day"), ("retention-sync", "retention_sync"))
#: How often each region evaluates its readiness (EventBridge Scheduler rate expression; `drctl evaluate` on AWS).
EVALUATION_RATE = "rate(1 hour)"


def deployed_in(region: str, dr_region: str) -> dict[str, Orchestrated]:
    """The runbooks whose state machines `region` has."""
    return {name: runbook for name, runbook in RUNBOOKS.items() if runbook.deployed == "both" or region == dr_region}
