"""Running a lifecycle runbook on the engine (lock, journal in the writer's region), and its evidence.

A lifecycle run changes the records, so it targets the region whose database writes (observed, never configured),
takes the environment's runbook lock there (no lifecycle change races a failover), and journals there. Its evidence
goes to that region's Object Lock evidence bucket and the local chain, like every run's.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.journal import LOCAL_RUNS, Journal, RunRecord, new_run_id
from dr_runbooks.engine.runner import Listener, execute
from dr_runbooks.evidence.record import EvidenceRecord, Verification
from dr_runbooks.lifecycle.plans import DISPOSAL, LABELS, LEGAL_HOLD, LEGAL_RELEASE, PLANS, RETENTION_SYNC
from dr_runbooks.lifecycle.policy import RetentionPolicy, system_clock
from dr_runbooks.observe import probes
from dr_runbooks.orchestration.catalog import Skipped
from dr_runbooks.runbooks import driver
from dr_runbooks.runbooks.estate import Refused
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology


def writer_region(aws: AwsSession, topology: Topology) -> str:
    """The region whose records database writes, as the first region that answers DescribeGlobalClusters says."""
    reasons = []
    for region in topology.regions:
        try:
            writer = probes.global_cluster(aws.client("rds", region, probe=True), topology.global_cluster_id).writer()
        except (BotoCoreError, ClientError) as error:
            reasons.append(f"{region}: {str(error).splitlines()[0]}")
            continue
        if writer is not None:
            return writer.region
        reasons.append(f"{region}: no writer reported")
    raise Refused(f"no region names a writer of the records database ({'; '.join(reasons)}): nothing changed")


def scheduled_sync_preflight(aws: AwsSession, topology: Topology, region: str) -> dict[str, Any]:
    """A retention sync started by EventBridge Scheduler (in both regions, daily): it runs only where the records
    database writes, and is skipped (not failed) in the other region; no region naming a writer fails it."""
    writer = writer_region(aws, topology)
    if writer != region:
        raise Skipped(f"the records database writes in {writer}, not in {region}: the retention sync runs there")
    return params_of(topology, system_clock())


def params_of(topology: Topology, now: datetime, **extra: Any) -> dict[str, Any]:
    """What every lifecycle run journals: the policy it judged by, the injected clock's now, the backup retention."""
    return {"policy": vars(RetentionPolicy.of(topology.lifecycle)), "as_of": now.isoformat(),
            "backup_retention_days": topology.lifecycle.backup_retention_days, **extra}


def new_context(aws: AwsSession, topology: Topology, runbook: str, region: str, params: dict[str, Any],
                operator: str, local_dir: Path = LOCAL_RUNS) -> RunContext:
    plan = PLANS[runbook]()
    run = RunRecord(run_id=new_run_id(LABELS[runbook], region), runbook=runbook, env_name=topology.env_name,
                    target_region=region, operator=operator, mfa=aws.mfa,
                    params={**params, "changing_steps": [step.name for step in plan.steps if step.changes]})
    return RunContext(run=run, topology=topology, aws=aws,
                      journal=Journal(aws, region, topology.in_region(region).runbook_table, local_dir))


def run(ctx: RunContext, listener: Listener | None = None) -> RunRecord:
    """Run (or resume: `ctx` rebuilt from the journal) the run's plan under the environment's lock."""
    return execute(PLANS[ctx.run.runbook](), ctx, driver.lock_of(ctx), listener)


def _outputs(run: RunRecord, step: str) -> dict[str, Any]:
    record = run.steps.get(step)
    return record.outputs if record is not None and record.status == "succeeded" else {}


def evidence(run: RunRecord, topology: Topology, sandbox: bool) -> EvidenceRecord:
    """The run's record: the engine's timeline, and what the lifecycle verified (a disposal: its certificate)."""
    base = driver.evidence_record(run, topology, sandbox)
    return base.model_copy(update={"kind": run.runbook, "from_region": None, "rto": None, "rpo": None,
                                   "verifications": _verifications(run)})


def _verifications(run: RunRecord) -> tuple[Verification, ...]:
    params, ok = run.params, run.status == "succeeded"
    result = "passed" if ok else "failed"
    if run.runbook == RETENTION_SYNC:
        synced = {**_outputs(run, "find-moved"), **_outputs(run, "extend-retention"), **_outputs(run, "mark-synced")}
        return (Verification(
            what="the charts of every patient whose retention date moved are retained until it, in both regions",
            how="retention date = last visit + retention years (minors: majority + years if later); "
                "GetObjectRetention of every version, PutObjectRetention (COMPLIANCE) where it was earlier, in each "
                "region's bucket; then the patients marked synced",
            result=result, checked=synced.get("versions_checked", 0),
            detail=json.dumps({"as_of": params["as_of"], **synced}, sort_keys=True)),)
    if run.runbook in (LEGAL_HOLD, LEGAL_RELEASE):
        placing = run.runbook == LEGAL_HOLD
        charts = _outputs(run, "hold-charts" if placing else "release-charts")
        return (Verification(
            what=f"legal hold {'placed on' if placing else 'released from'} patient {params['patient_id']}: every "
                 "chart version in both regions, and the records",
            how=f"PutObjectLegalHold({'ON' if placing else 'OFF'}) then HeadObject of every version in each region; "
                "the hold's row in legal_holds",
            result=result, checked=charts.get("versions", 0),
            detail=json.dumps({"patient_id": params["patient_id"], "reason": params["reason"],
                               "by": run.operator, "at": params["as_of"]}, sort_keys=True)),)
    if run.runbook == DISPOSAL:
        certificate = _outputs(run, "certify")
        return (Verification(
            what="certificate of destruction: every chart version of the patients deleted in both regions and "
                 "verified gone; their records rows deleted, a tombstone kept",
            how="per patient, before deleting anything: no legal hold, retention date passed, no version locked in "
                "either region; DeleteObject of each version id in each region; ListObjectVersions finds none left",
            result=result if certificate else "failed", checked=certificate.get("chart_versions", 0),
            detail=json.dumps(certificate or {"incomplete": run.error}, sort_keys=True)),)
    return ()
