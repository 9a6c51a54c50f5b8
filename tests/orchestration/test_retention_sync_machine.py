"""The retention sync on Step Functions, as EventBridge Scheduler starts it daily in both regions: its state machine
walked in-process (`Machine`), each task under its function's role (the sandbox enforces the stacks' policies), the
database steps in the database function of the writer's region, the charts of both regions from the runbook function.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from dr_runbooks.lifecycle import records
from dr_runbooks.lifecycle.policy import RetentionPolicy, start_of
from dr_runbooks.lifecycle.steps import MOVED_PREFIX, open_records
from ehr_dr_sandbox.api import Sandbox

from .test_handler import Machine, evidence_kinds, writer

#: What the schedule passes the state machine (stacks/orchestration.py `_schedules`), besides the target region.
SCHEDULED = {"operator": "eventbridge-scheduler"}
SYNC = "retention-sync"


@pytest.fixture(scope="module")
def seeded(sandbox: Sandbox) -> None:
    sandbox.seed(patients=12, files_per_patient=2)
    sandbox.action("replication-drain", timeout=30)


def seen_today(sandbox: Sandbox, how_many: int) -> dict[str, date]:
    """Patients (adults, so today's visit moves their date) recorded as seen today: id -> their new retention date."""
    today = datetime.now(UTC).date()
    policy = RetentionPolicy.of(sandbox.topology.lifecycle)
    with open_records(sandbox.client, sandbox.topology, writer(sandbox)) as db:
        movable = [patient for patient in records.patients(db) if patient.retained_until is not None and
                   policy.retain_until(patient.birth_date, today) > patient.retained_until and not patient.held]
        chosen = {patient.patient_id: policy.retain_until(patient.birth_date, today) for patient in movable[:how_many]}
        for patient_id in chosen:
            db.execute("UPDATE patients SET last_visit = %s WHERE patient_id = %s", (today, patient_id))
    assert len(chosen) == how_many, "the seed has too few adult patients"
    return chosen


def retained_until(sandbox: Sandbox, patient_id: str) -> dict[str, set[Any]]:
    """Region -> the retain-until dates of every version of the patient's charts there."""
    with open_records(sandbox.client, sandbox.topology, writer(sandbox)) as db:
        patient = records.patient(db, patient_id)
    assert patient is not None
    found: dict[str, set[Any]] = {}
    for region, resources in sandbox.topology.regions.items():
        s3 = sandbox.client("s3", region)
        listed = s3.list_object_versions(Bucket=resources.chart_bucket, Prefix=patient.chart_prefix)["Versions"]
        found[region] = {s3.head_object(Bucket=resources.chart_bucket, Key=item["Key"], VersionId=item["VersionId"])
                         ["ObjectLockRetainUntilDate"] for item in listed}
    return found


def synced_date(sandbox: Sandbox, patient_id: str) -> date | None:
    with open_records(sandbox.client, sandbox.topology, writer(sandbox)) as db:
        patient = records.patient(db, patient_id)
    assert patient is not None
    return patient.retained_until


def test_a_scheduled_sync_extends_the_charts_of_a_patient_seen_again_in_both_regions_under_the_function_roles(
        sandbox: Sandbox, sandbox_env: dict[str, str], seeded: None, tmp_path: Path) -> None:
    (patient_id, due), = seen_today(sandbox, 1).items()
    machine = Machine(sandbox, writer(sandbox), tmp_path)

    output = machine.run(SYNC, **SCHEDULED)

    run = machine.journal(output["run"]["run_id"])
    assert run.status == "succeeded", run.error
    assert retained_until(sandbox, patient_id) == {region: {start_of(due)} for region in sandbox.topology.regions}
    assert synced_date(sandbox, patient_id) == due
    assert [(region, payload["step"]) for region, payload in machine.database_invocations] == [
        (machine.region, "find-moved"), (machine.region, "mark-synced")]
    assert evidence_kinds(sandbox, machine.region)[run.run_id] == SYNC


def test_the_moved_patients_travel_as_a_manifest_in_the_evidence_bucket_not_in_the_journal(
        sandbox: Sandbox, sandbox_env: dict[str, str], seeded: None, tmp_path: Path) -> None:
    moved = seen_today(sandbox, 1)
    machine = Machine(sandbox, writer(sandbox), tmp_path)

    run = machine.journal(machine.run(SYNC, **SCHEDULED)["run"]["run_id"])

    found = run.steps["find-moved"].outputs
    assert found["manifest"] == f"{MOVED_PREFIX}/{run.run_id}.json"
    manifest = json.loads(sandbox.client("s3", machine.region).get_object(
        Bucket=sandbox.topology.in_region(machine.region).evidence_bucket, Key=found["manifest"])["Body"].read())
    assert {patient["patient_id"]: patient["until"] for patient in manifest["patients"]} == {
        patient_id: due.isoformat() for patient_id, due in moved.items()}
    assert not any(patient_id in json.dumps(run.steps[name].outputs) for name in run.steps for patient_id in moved)


def test_a_sync_longer_than_an_invocation_hands_back_and_continues_with_the_next_patient(
        sandbox: Sandbox, sandbox_env: dict[str, str], seeded: None, tmp_path: Path) -> None:
    moved = seen_today(sandbox, 2)
    machine = Machine(sandbox, writer(sandbox), tmp_path)
    machine.invocation_seconds = 0  # every invocation's deadline has passed once it extended one patient
    waits: list[int] = []

    run = machine.journal(machine.run(SYNC, waits=waits, **SCHEDULED)["run"]["run_id"])

    assert run.status == "succeeded", run.error
    assert len(waits) == 1
    assert run.steps["extend-retention"].outputs["patients_moved"] == 2
    for patient_id, due in moved.items():
        assert retained_until(sandbox, patient_id) == {region: {start_of(due)} for region in sandbox.topology.regions}


def test_a_scheduled_sync_where_the_database_does_not_write_is_skipped_and_succeeds(
        sandbox: Sandbox, sandbox_env: dict[str, str], seeded: None, tmp_path: Path) -> None:
    source = writer(sandbox)
    moved = seen_today(sandbox, 1)
    machine = Machine(sandbox, sandbox.topology.partner(source), tmp_path)

    output = machine.run(SYNC, **SCHEDULED)

    assert output["run"] == {"skipped": f"the records database writes in {source}, not in {machine.region}: the "
                                        "retention sync runs there"}
    assert [payload["action"] for payload in machine.invocations] == ["start"]
    assert all(synced_date(sandbox, patient_id) != due for patient_id, due in moved.items())
