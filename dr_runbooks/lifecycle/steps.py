"""The lifecycle runbooks' steps: retention sync, legal hold, disposal. Each is idempotent and resumable.

A run targets the region whose database writes (the records are changed there; its journal is there too). Every step
reads the database and both chart buckets afresh, so a step re-run after a crash finds what is already done and does
the rest:
- sync marks a patient synced (`patients.retained_until`) only once both regions' versions are extended;
- a hold is recorded before the charts are held, and the charts are released before the record is: a crash in
  between leaves the patient held, which only ever blocks a disposal;
- a disposal checks everything about a patient before deleting anything of it (nothing half-deleted by a refusal),
  checkpoints each patient it finished, and on resume finishes a patient it had started (its remaining versions,
  then its rows), verifying that nothing is left in either region.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dr_runbooks.engine import calls
from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.waits import StepPending, wait_until
from dr_runbooks.lifecycle import archive, batch, records
from dr_runbooks.lifecycle.policy import RetentionPolicy, start_of
from dr_runbooks.runbooks.canary import Database, connect, db_endpoint
from dr_runbooks.topology import Topology


def database(ctx: RunContext) -> Database:
    """The records database of the run's region (its writer), with the lifecycle tables made if missing."""
    db = open_records(ctx.client, ctx.topology, ctx.run.target_region)
    records.prepare(db)
    return db


def open_records(clients: archive.Clients, topology: Topology, region: str) -> Database:
    endpoint = db_endpoint(clients("rds", region), clients("secretsmanager", region),
                           topology.in_region(region).db_cluster_id, topology.db_secret_name, topology.database_name)
    with calls.waiting():
        return connect(endpoint)


def policy_of(ctx: RunContext) -> RetentionPolicy:
    return RetentionPolicy(**ctx.params["policy"])


def as_of(ctx: RunContext) -> date:
    """The day the run judges retention by: the injected clock's, taken when the run started."""
    return datetime.fromisoformat(ctx.params["as_of"]).date()


# --- retention sync -------------------------------------------------------------------------------------------------
# Three steps, so that each runs where it can on AWS: the records database is reached only from the records VPC (the
# database function), which reaches only its own region's S3 (a gateway endpoint), while the charts are changed in
# both regions (the runbook function, outside any VPC). The moved patients travel between them as a manifest in the
# run's region's evidence bucket (Object Lock: it stays as evidence of what was synced), not in the journal, which a
# DynamoDB item bounds at 400 KB.

#: Where `find-moved` writes the manifest of a run: `<prefix>/<run id>.json` in the run's region's evidence bucket.
MOVED_PREFIX = "lifecycle/moved"


def find_moved(ctx: RunContext) -> dict[str, Any]:
    """The patients whose retention date moved past the one last set (seen again, or never synced), with the date,
    as a JSON manifest; its key and digest are the step's outputs."""
    policy = policy_of(ctx)
    with database(ctx) as db:
        dated = [(patient, patient.due(policy)) for patient in records.patients(db)]
    moved = [{"patient_id": patient.patient_id, "prefix": patient.chart_prefix, "until": due.isoformat()}
             for patient, due in dated if patient.retained_until is None or due > patient.retained_until]
    body = json.dumps({"run_id": ctx.run.run_id, "as_of": ctx.params["as_of"], "patients": moved}).encode()
    key = f"{MOVED_PREFIX}/{ctx.run.run_id}.json"
    ctx.client("s3", ctx.run.target_region).put_object(Bucket=ctx.target.evidence_bucket, Key=key, Body=body,
                                                       ContentMD5=batch.content_md5(body))
    return {"manifest": key, "sha256": hashlib.sha256(body).hexdigest(), "patients_moved": len(moved),
            "retention_dates": len({patient["until"] for patient in moved})}


def moved_patients(ctx: RunContext) -> list[dict[str, str]]:
    """The manifest `find-moved` wrote, checked against the digest it journaled (a later version of the key, or any
    other change, is refused rather than synced)."""
    found = ctx.output("find-moved")
    body = ctx.client("s3", ctx.run.target_region).get_object(Bucket=ctx.target.evidence_bucket,
                                                              Key=found["manifest"])["Body"].read()
    if hashlib.sha256(body).hexdigest() != found["sha256"]:
        raise RuntimeError(f"the manifest {found['manifest']} is not the one find-moved wrote (digest differs)")
    patients: list[dict[str, str]] = json.loads(body)["patients"]
    return patients


def extend_retention(ctx: RunContext) -> dict[str, Any]:
    """Every version of the moved patients' charts, in both regions, retained until the patient's date (never
    shortened). Checkpointed per patient; at the invocation's deadline it hands back and continues where it was.
    With `batch`, through S3 Batch Operations jobs (one per region and date) instead of a call per version."""
    moved = moved_patients(ctx)
    if ctx.params.get("batch"):
        return _extend_by_batch(ctx, moved)
    done = ctx.checkpointed("extended") or {"patients": 0, "versions_checked": 0, "versions_extended": 0}
    for this_invocation, patient in enumerate(moved[done["patients"]:]):
        if this_invocation and time.time() > ctx.invocation_deadline:  # at least one patient per invocation
            raise StepPending(f"retention of {len(moved) - done['patients']} more patients", 1)
        until = start_of(date.fromisoformat(patient["until"]))
        versions = [v for v in archive.chart_versions(ctx.client, ctx.topology, patient["prefix"])
                    if not v.delete_marker]
        extended = sum(archive.extend_retention(ctx.client, version, until) for version in versions)
        done = {"patients": done["patients"] + 1, "versions_checked": done["versions_checked"] + len(versions),
                "versions_extended": done["versions_extended"] + extended}
        ctx.checkpoint(extended=done)
    return {"patients_moved": len(moved), "versions_checked": done["versions_checked"],
            "versions_extended": done["versions_extended"]}


def _extend_by_batch(ctx: RunContext, moved: list[dict[str, str]]) -> dict[str, Any]:
    """Manifests and jobs per region and date (checkpointed: a resumed step does not submit twice), waited for until
    every job completed (a failed or cancelled one fails the step, and so nothing is marked synced)."""
    by_date: dict[date, list[archive.ChartVersion]] = {}
    for patient in moved:
        by_date.setdefault(date.fromisoformat(patient["until"]), []).extend(
            version for version in archive.chart_versions(ctx.client, ctx.topology, patient["prefix"])
            if not version.delete_marker)
    jobs: dict[str, str] = dict(ctx.checkpointed("jobs") or {})
    for (region, until), versions in batch.group(by_date).items():
        name = f"{region}/{until.isoformat()}"
        if name not in jobs:
            here = ctx.topology.in_region(region)
            if not here.retention_batch_role_arn:
                raise RuntimeError(f"the topology names no S3 Batch Operations role in {region}")
            jobs[name] = batch.submit(ctx.client("s3", region), ctx.client("s3control", region),
                                      account=ctx.topology.account, region=region, run_id=ctx.run.run_id,
                                      until=until, versions=versions, evidence_bucket=here.evidence_bucket,
                                      role_arn=here.retention_batch_role_arn).job_id
            ctx.checkpoint(jobs=jobs)
    ended = {name: wait_until(ctx, lambda name=name, job=job: batch.status(
        ctx.client("s3control", name.split("/")[0]), ctx.topology.account, job),
        lambda seen: seen["status"] in batch.DONE_STATES, f"S3 Batch Operations job {job} ({name})")
        for name, job in jobs.items()}
    unfinished = {name: seen["status"] for name, seen in ended.items() if seen["status"] != "Complete"}
    if unfinished:
        raise RuntimeError(f"S3 Batch Operations jobs did not complete: {unfinished}")
    return {"patients_moved": len(moved), "retention_dates": len(by_date), "jobs": ended,
            "versions_checked": sum(len(versions) for versions in by_date.values()),
            "versions_extended": sum(seen["succeeded"] for seen in ended.values())}


def mark_synced(ctx: RunContext) -> dict[str, Any]:
    """Record each moved patient's date as synced, once `extend-retention` has extended both regions' versions."""
    moved = moved_patients(ctx)
    with database(ctx) as db:
        for patient in moved:
            records.mark_synced(db, patient["patient_id"], date.fromisoformat(patient["until"]))
    return {"patients_synced": len(moved)}


# --- legal hold -----------------------------------------------------------------------------------------------------

def record_hold(ctx: RunContext) -> dict[str, Any]:
    with database(ctx) as db:
        held = records.place_hold(db, ctx.params["patient_id"], ctx.params["reason"], ctx.run.operator,
                                  datetime.fromisoformat(ctx.params["as_of"]))
    return {"hold": held}


def hold_charts(ctx: RunContext) -> dict[str, Any]:
    return _set_holds(ctx, on=True)


def release_charts(ctx: RunContext) -> dict[str, Any]:
    return _set_holds(ctx, on=False)


def release_record(ctx: RunContext) -> dict[str, Any]:
    with database(ctx) as db:
        released = records.release_hold(db, ctx.params["patient_id"], ctx.params["reason"], ctx.run.operator,
                                        datetime.fromisoformat(ctx.params["as_of"]))
    return {"released": released}


def _set_holds(ctx: RunContext, on: bool) -> dict[str, Any]:
    versions = [version for version in archive.chart_versions(ctx.client, ctx.topology, ctx.params["prefix"])
                if not version.delete_marker]
    changed = sum(archive.set_legal_hold(ctx.client, version, on) for version in versions)
    wrong = [version.line for version in versions if archive.lock_of(ctx.client, version).legal_hold != on]
    if wrong:
        raise RuntimeError(f"{len(wrong)} version(s) still {'without' if on else 'with'} a legal hold, e.g. {wrong[0]}")
    return {"versions": len(versions), "changed": changed,
            "regions": sorted({version.region for version in versions})}


# --- disposal -------------------------------------------------------------------------------------------------------

def dispose_patients(ctx: RunContext) -> dict[str, Any]:
    """Each patient of the run, one at a time: refused (nothing of theirs deleted) if seen again, held, or any version
    still locked in either region; else every version in both regions deleted, verified gone, then their rows."""
    policy, day = policy_of(ctx), as_of(ctx)
    done: dict[str, Any] = dict(ctx.checkpointed("done") or {})
    refused: dict[str, str] = dict(ctx.checkpointed("refused") or {})
    with database(ctx) as db:
        for patient_id in ctx.params["patients"]:
            if patient_id in done or patient_id in refused:
                continue
            started = ctx.checkpointed("started") == patient_id
            outcome = _dispose_one(ctx, db, patient_id, policy, day, resuming=started)
            if isinstance(outcome, str):
                refused[patient_id] = outcome
                ctx.checkpoint(refused=refused)
            else:
                done[patient_id] = outcome
                ctx.checkpoint(done=done, started=None)
    return {"disposed": done, "refused": refused}


def _dispose_one(ctx: RunContext, db: Database, patient_id: str, policy: RetentionPolicy, day: date,
                 resuming: bool) -> dict[str, Any] | str:
    """The patient's disposal record, or why it was refused (nothing deleted)."""
    patient = records.patient(db, patient_id)
    listed = ctx.checkpointed("listed")
    if patient is None and resuming and patient_id in records.disposed(db, [patient_id]):
        # The interruption came after its rows were deleted: nothing is left to do but record it.
        return {"versions": listed["count"], "keys_sha256": listed["sha256"], "regions": listed["regions"],
                "views": 0, "scans": 0, "patients": 0}
    if patient is None:
        return "not in the records (already disposed of by another run?)"
    if patient.held:
        return "under legal hold"
    if patient.due(policy) > day:
        return f"retained until {patient.due(policy).isoformat()} (seen again since the selection?)"
    versions = archive.chart_versions(ctx.client, ctx.topology, patient.chart_prefix)
    if not resuming:
        now = datetime.now(UTC)  # S3 Object Lock's clock, not the injected one
        locked = [version for version in versions if archive.lock_of(ctx.client, version).blocks_deletion(now)]
        if locked:
            return f"{len(locked)} chart version(s) still locked by S3 Object Lock, e.g. {locked[0].line}"
        # The digest names what is about to go; on resume, what was listed then is what the record keeps.
        ctx.checkpoint(started=patient_id, listed={"count": len(versions), "sha256": archive.keys_digest(versions),
                                                   "regions": sorted({v.region for v in versions})})
        listed = ctx.checkpointed("listed")
    for version in versions:
        archive.delete_version(ctx.client, version)
    left = archive.chart_versions(ctx.client, ctx.topology, patient.chart_prefix)
    if left:
        raise RuntimeError(f"patient {patient_id}: {len(left)} version(s) left after deletion, e.g. {left[0].line}")
    rows = records.dispose_rows(db, patient_id, ctx.run.run_id, datetime.fromisoformat(ctx.params["as_of"]),
                                listed["count"], listed["sha256"])
    return {"versions": listed["count"], "keys_sha256": listed["sha256"], "regions": listed["regions"], **rows}


def certify(ctx: RunContext) -> dict[str, Any]:
    """The certificate's facts: who was disposed of (ids only), counts, one digest over the patients' digests, and
    when the last backups that still hold them expire (the backup retention, counted from now)."""
    outcome = ctx.output("dispose-patients")
    done: dict[str, Any] = outcome["disposed"]
    backups_expire = datetime.fromisoformat(ctx.params["as_of"]) + timedelta(days=ctx.params["backup_retention_days"])
    return {
        "patients": sorted(done),
        "refused": outcome["refused"],
        "chart_versions": sum(item["versions"] for item in done.values()),
        "scans": sum(item["scans"] for item in done.values()),
        "views": sum(item["views"] for item in done.values()),
        "keys_sha256": certificate_digest(done),
        "backups_hold_them_until": backups_expire.isoformat(),
    }


def certificate_digest(done: dict[str, Any]) -> str:
    """SHA-256 over `<patient id> <patient's keys digest>` lines, sorted: one value for the whole disposal."""
    lines = sorted(f"{patient_id} {item['keys_sha256']}" for patient_id, item in done.items())
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()
