"""The records lifecycle as on-call runs it: `drctl legal-hold`, `drctl retention sync`, `drctl dispose`.

One seeded sandbox for the module; each test takes its own patients (`pick`), so the order of the tests does not
matter. The clock is injected: it decides whose retention has passed; S3 Object Lock keeps the real time.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from dr_runbooks.evidence.chain import verify_chain
from dr_runbooks.evidence.record import EvidenceRecord
from dr_runbooks.lifecycle import archive, batch, commands
from dr_runbooks.lifecycle.policy import RetentionPolicy, start_of

from .conftest import MFA, TODAY, pick, versions

USED: set[str] = set()


def chain(tmp_path: Path, env: str) -> list[EvidenceRecord]:
    return [EvidenceRecord.model_validate_json(path.read_bytes())
            for path in sorted((tmp_path / ".ehr-dr" / "evidence" / env).glob("*.json"))]


def one_line_refusal(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("refused:"), result.output
    return lines[0]


def test_a_hold_on_an_unknown_patient_is_refused_and_changes_nothing(drctl, records_db, seeded):
    before = records_db.execute("SELECT count(*) FROM legal_holds").fetchone()[0]
    line = one_line_refusal(drctl("legal-hold", "place", "--patient", "pt-999999", "--reason", "litigation", "--yes",
                                  *MFA))
    assert "no patient 'pt-999999'" in line
    assert records_db.execute("SELECT count(*) FROM legal_holds").fetchone()[0] == before


def test_releasing_a_hold_that_does_not_exist_is_refused_and_changes_nothing(drctl, sandbox, seeded):
    patient = pick(seeded, USED)
    before = versions(sandbox, patient)
    line = one_line_refusal(drctl("legal-hold", "release", "--patient", patient.patient_id, "--reason", "settled",
                                  "--yes", *MFA))
    assert "no legal hold in force" in line
    assert versions(sandbox, patient) == before


def test_a_hold_without_mfa_is_refused(drctl, seeded):
    patient = pick(seeded, USED)
    assert drctl("legal-hold", "place", "--patient", patient.patient_id, "--reason", "x", "--yes").exit_code == 2


def test_dispose_before_anyones_retention_has_passed_is_refused_and_changes_nothing(drctl, clock, records_db,
                                                                                     seeded):
    clock(date(2020, 1, 1))
    count = records_db.execute("SELECT count(*) FROM patients").fetchone()[0]
    line = one_line_refusal(drctl("dispose", "--yes", *MFA))
    assert "no patient is past retention" in line
    assert records_db.execute("SELECT count(*) FROM patients").fetchone()[0] == count


def test_a_legal_hold_holds_every_version_in_both_regions_and_records_who_why_when(drctl, sandbox, records_db,
                                                                                   seeded, tmp_path):
    patient = pick(seeded, USED)
    result = drctl("legal-hold", "place", "--patient", patient.patient_id, "--reason", "subpoena 2026-17",
                   "--yes", "--output", "json", *MFA)
    assert result.exit_code == 0, result.output
    held = versions(sandbox, patient)
    assert set(held) == set(sandbox.topology.regions) and all(held.values())
    assert all(version["ObjectLockLegalHoldStatus"] == "ON" for found in held.values() for version in found)
    row = records_db.execute("SELECT reason, placed_by FROM legal_holds WHERE patient_id = %s AND released_at IS "
                             "NULL", (patient.patient_id,)).fetchone()
    assert row[0] == "subpoena 2026-17" and row[1]
    (record,) = [r for r in chain(tmp_path, sandbox.topology.env_name) if r.kind == "legal-hold"]
    detail = json.loads(record.verifications[0].detail)
    assert (detail["patient_id"], detail["reason"], detail["by"]) == (patient.patient_id, "subpoena 2026-17", row[1])


def test_a_released_hold_clears_every_version_and_is_kept_in_the_history(drctl, sandbox, records_db, seeded):
    patient = pick(seeded, USED)
    assert drctl("legal-hold", "place", "--patient", patient.patient_id, "--reason", "audit", "--yes",
                 *MFA).exit_code == 0
    assert drctl("legal-hold", "release", "--patient", patient.patient_id, "--reason", "audit closed", "--yes",
                 *MFA).exit_code == 0
    assert all(version.get("ObjectLockLegalHoldStatus") == "OFF"
               for found in versions(sandbox, patient).values() for version in found)
    row = records_db.execute("SELECT release_reason, released_at IS NOT NULL FROM legal_holds WHERE patient_id = %s",
                             (patient.patient_id,)).fetchone()
    assert tuple(row) == ("audit closed", True)


def test_a_held_patient_is_never_disposed(drctl, sandbox, records_db, seeded):
    patient = pick(seeded, USED, past=True)
    assert drctl("legal-hold", "place", "--patient", patient.patient_id, "--reason", "litigation", "--yes",
                 *MFA).exit_code == 0

    listed = drctl("dispose", "--dry-run", "--output", "json")
    refused = drctl("dispose", "--patient", patient.patient_id, "--yes", *MFA)

    assert patient.patient_id not in {row["patient_id"] for row in json.loads(listed.stdout)["patients"]}
    assert "under legal hold" in one_line_refusal(refused)
    assert all(versions(sandbox, patient).values())
    assert records_db.execute("SELECT 1 FROM patients WHERE patient_id = %s", (patient.patient_id,)).fetchone()


def test_a_patient_seen_again_keeps_every_chart_past_the_old_date(drctl, clock, sandbox, records_db, seeded):
    patient = pick(seeded, USED, past=True)
    old = date.fromisoformat(patient.retained_until)
    records_db.execute("UPDATE patients SET last_visit = %s WHERE patient_id = %s", (TODAY, patient.patient_id))
    new = RetentionPolicy.of(sandbox.config).retain_until(date.fromisoformat(patient.birth_date), TODAY)

    synced = drctl("retention", "sync", "--yes", *MFA)

    assert synced.exit_code == 0, synced.output
    found = versions(sandbox, patient)
    assert all(found.values())
    assert {version["ObjectLockRetainUntilDate"] for versions_ in found.values() for version in versions_} == {
        start_of(new)}
    clock(old.replace(year=old.year + 1))
    listed = json.loads(drctl("dispose", "--dry-run", "--output", "json").stdout)["patients"]
    assert patient.patient_id not in {row["patient_id"] for row in listed}
    region, (first, *_) = next(iter(found.items()))
    with pytest.raises(ClientError):  # S3 itself refuses to delete it now
        sandbox.client("s3", region).delete_object(Bucket=sandbox.topology.in_region(region).chart_bucket,
                                                   Key=first["Key"], VersionId=first["VersionId"])
    assert records_db.execute("SELECT retained_until FROM patients WHERE patient_id = %s",
                              (patient.patient_id,)).fetchone()[0] == new


def test_a_minors_charts_are_retained_until_majority_plus_the_minors_years(drctl, sandbox, records_db, seeded):
    patient = pick(seeded, USED, minor=True)
    birth = date.fromisoformat(patient.birth_date)
    records_db.execute("UPDATE patients SET last_visit = %s WHERE patient_id = %s", (TODAY, patient.patient_id))

    assert drctl("retention", "sync", "--yes", *MFA).exit_code == 0

    lifecycle = sandbox.topology.lifecycle
    majority_plus = birth.replace(year=birth.year + lifecycle.minor_age_of_majority + lifecycle.minor_retention_years)
    assert majority_plus > TODAY.replace(year=TODAY.year + lifecycle.retention_years)
    assert {version["ObjectLockRetainUntilDate"] for found in versions(sandbox, patient).values()
            for version in found} == {start_of(majority_plus)}


def test_a_disposal_deletes_every_version_in_both_regions_and_the_rows_and_certifies_it_in_the_chain(
        drctl, sandbox, records_db, seeded, tmp_path):
    patients = [pick(seeded, USED, past=True) for _ in range(2)]
    before = {patient.patient_id: versions(sandbox, patient) for patient in patients}
    lines = [archive.ChartVersion(region, sandbox.topology.in_region(region).chart_bucket, v["Key"], v["VersionId"])
             for found in before.values() for region, items in found.items() for v in items]

    result = drctl("dispose", *[arg for p in patients for arg in ("--patient", p.patient_id)], "--yes", *MFA)

    assert result.exit_code == 0, result.output
    assert not any(found for patient in patients for found in versions(sandbox, patient).values())
    ids = [patient.patient_id for patient in patients]
    assert records_db.execute("SELECT count(*) FROM patients WHERE patient_id = ANY(%s)", (ids,)).fetchone()[0] == 0
    assert records_db.execute("SELECT count(*) FROM scans WHERE patient_id = ANY(%s)", (ids,)).fetchone()[0] == 0
    assert records_db.execute("SELECT count(*) FROM disposals WHERE patient_id = ANY(%s)", (ids,)).fetchone()[0] == 2
    records = chain(tmp_path, sandbox.topology.env_name)
    assert verify_chain(records) == []
    (certificate,) = [record for record in records if record.kind == "disposal"]
    facts = json.loads(certificate.verifications[0].detail)
    assert (facts["patients"], facts["chart_versions"], certificate.passed) == (sorted(ids), len(lines), True)
    per_patient = {pid: archive.keys_digest([line for line in lines if f"/{pid}/" in line.key]) for pid in ids}
    expected = archive.hashlib.sha256("\n".join(sorted(f"{pid} {digest}" for pid, digest in per_patient.items()))
                                      .encode()).hexdigest()
    assert facts["keys_sha256"] == expected
    assert facts["backups_hold_them_until"] > certificate.started_at.isoformat()


def test_an_interrupted_disposal_resumes_to_completion(drctl, sandbox, records_db, seeded, monkeypatch):
    patients = [pick(seeded, USED, past=True) for _ in range(2)]
    deleted: list[archive.ChartVersion] = []
    real_delete = archive.delete_version

    def crash_midway(clients, version):
        if len(deleted) == FILES_BEFORE_CRASH:
            raise ConnectionError("the operator's laptop lost the network")
        deleted.append(version)
        real_delete(clients, version)

    monkeypatch.setattr(archive, "delete_version", crash_midway)
    first = drctl("dispose", *[arg for p in patients for arg in ("--patient", p.patient_id)], "--yes", "--output",
                  "json", *MFA)
    assert first.exit_code == 1, first.output
    assert any(found for patient in patients for found in versions(sandbox, patient).values())
    monkeypatch.setattr(archive, "delete_version", real_delete)

    resumed = drctl("dispose", "--resume", json.loads(first.stdout)["run_id"], "--yes", *MFA)

    assert resumed.exit_code == 0, resumed.output
    assert not any(found for patient in patients for found in versions(sandbox, patient).values())
    ids = [patient.patient_id for patient in patients]
    assert records_db.execute("SELECT count(*) FROM disposals WHERE patient_id = ANY(%s)", (ids,)).fetchone()[0] == 2


#: Half of the first patient's versions (two files in each of two regions): the crash leaves it half-deleted.
FILES_BEFORE_CRASH = 2


def test_the_sandbox_refuses_to_shorten_a_compliance_retention_as_aws_does(sandbox, seeded):
    patient = pick(seeded, USED, past=False)
    region = sandbox.topology.primary_region
    (first, *_) = versions(sandbox, patient)[region]
    s3 = sandbox.client("s3", region)
    where = {"Bucket": sandbox.topology.in_region(region).chart_bucket, "Key": first["Key"],
             "VersionId": first["VersionId"]}
    shorter = first["ObjectLockRetainUntilDate"].replace(year=first["ObjectLockRetainUntilDate"].year - 1)

    with pytest.raises(ClientError, match="AccessDenied"):
        s3.put_object_retention(**where, Retention={"Mode": "COMPLIANCE", "RetainUntilDate": shorter})
    s3.put_object_retention(**where, Retention={"Mode": "COMPLIANCE", "RetainUntilDate": shorter.replace(
        year=shorter.year + 2)})
    assert s3.head_object(**where)["ObjectLockRetainUntilDate"].year == shorter.year + 2


def test_the_sandbox_answers_get_object_retention_of_a_version_as_aws_does(sandbox, seeded):
    """moto answers `GET ?retention` with the object itself; the sync reads retention without reading the chart."""
    patient = pick(seeded, USED, past=False)
    region = sandbox.topology.primary_region
    (first, *_) = versions(sandbox, patient)[region]
    s3 = sandbox.client("s3", region)
    bucket = sandbox.topology.in_region(region).chart_bucket

    retention = s3.get_object_retention(Bucket=bucket, Key=first["Key"], VersionId=first["VersionId"])["Retention"]

    assert retention == {"Mode": "COMPLIANCE", "RetainUntilDate": first["ObjectLockRetainUntilDate"]}


@pytest.mark.parametrize(("outcome", "exit_code", "synced"), [("Complete", 0, True), ("Failed", 1, False)])
def test_a_batch_sync_marks_patients_synced_only_once_every_job_completed(drctl, sandbox, records_db, seeded,
                                                                          monkeypatch, outcome, exit_code, synced):
    """S3 Batch Operations stands in as AWS runs it (moto has no S3 Control jobs): jobs created, then an outcome."""
    patient = pick(seeded, USED, past=False)
    records_db.execute("UPDATE patients SET last_visit = %s WHERE patient_id = %s", (TODAY, patient.patient_id))
    submitted: list[tuple[str, date, int]] = []

    def submit(s3, s3control, *, region, until, versions, **_):
        submitted.append((region, until, len(versions)))
        return batch.RetentionJob(region, until, len(versions), "manifest", f"job-{region}")

    monkeypatch.setattr(batch, "submit", submit)
    monkeypatch.setattr(batch, "status", lambda client, account, job: {"status": outcome, "succeeded": 2,
                                                                       "failed": 0, "total": 2})
    result = drctl("retention", "sync", "--batch", "--yes", *MFA)

    assert result.exit_code == exit_code, result.output
    due = RetentionPolicy.of(sandbox.config).retain_until(date.fromisoformat(patient.birth_date), TODAY)
    assert any(until == due and count >= FILES_PER_REGION for _, until, count in submitted)
    assert {region for region, _, _ in submitted} == set(sandbox.topology.regions)
    marked = records_db.execute("SELECT retained_until FROM patients WHERE patient_id = %s",
                                (patient.patient_id,)).fetchone()[0]
    assert (marked == due) == synced


#: The seed writes two chart files per patient: two versions in each region.
FILES_PER_REGION = 2


def test_a_patient_seen_again_while_the_disposal_is_confirmed_is_refused_and_keeps_everything(
        drctl, sandbox, records_db, seeded, monkeypatch, tmp_path):
    seen_again, other = pick(seeded, USED, past=True), pick(seeded, USED, past=True)
    before = versions(sandbox, seen_again)

    def a_visit_while_typing(word: str, yes: bool) -> None:
        records_db.execute("UPDATE patients SET last_visit = %s WHERE patient_id = %s",
                           (TODAY, seen_again.patient_id))

    monkeypatch.setattr(commands, "confirm", a_visit_while_typing)
    result = drctl("dispose", "--patient", seen_again.patient_id, "--patient", other.patient_id, "--yes", *MFA)

    assert result.exit_code == 0, result.output
    assert versions(sandbox, seen_again) == before
    assert records_db.execute("SELECT 1 FROM patients WHERE patient_id = %s", (seen_again.patient_id,)).fetchone()
    assert not any(versions(sandbox, other).values())
    (certificate,) = [r for r in chain(tmp_path, sandbox.topology.env_name) if r.kind == "disposal"]
    facts = json.loads(certificate.verifications[0].detail)
    assert facts["patients"] == [other.patient_id]
    assert "retained until" in facts["refused"][seen_again.patient_id]
