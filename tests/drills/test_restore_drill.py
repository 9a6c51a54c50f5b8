"""The restore drill on a sandbox: passes on good backups, fails with the reason on missing or corrupted ones,
reports the RPO of an old recovery point, and cleans up after an interrupted run. Tests run in file order: the
first one needs the DR vault still empty."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from dr_runbooks.cli import cli
from dr_runbooks.drills import restore, running
from dr_runbooks.drills.backups import take_backups
from dr_runbooks.evidence.record import EvidenceRecord
from dr_runbooks.evidence.report import build_report, render_markdown
from dr_runbooks.runbooks.canary import PostgresCanary, db_endpoint
from dr_runbooks.sandbox.api import Sandbox
from dr_runbooks.session import AwsSession

from .conftest import restore_drill, scratch_left


def test_a_drill_without_a_backup_in_the_dr_vault_fails_saying_the_backup_is_missing(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    vault = seeded.topology.in_region(seeded.topology.dr_region).backup_vault
    assert not aws.client("backup", seeded.topology.dr_region).list_recovery_points_by_backup_vault(
        BackupVaultName=vault)["RecoveryPoints"], "precondition: no backup taken yet in this module"
    run, record = restore_drill(seeded, aws, tmp_path)
    assert run.status == "failed" and not record.passed
    assert "backup missing: no completed recovery point" in record.errors[0].message
    assert vault in record.errors[0].message


def test_a_drill_of_good_backups_restores_validates_and_tears_down(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    take_backups(aws, seeded.topology)
    run, record = restore_drill(seeded, aws, tmp_path)
    assert run.status == "succeeded", run.error
    assert record.passed and record.kind == "restore-drill" and record.hipaa == ("A", "D", "E")
    records, charts, torn = record.verifications[:3]
    assert records.result == charts.result == torn.result == "passed"
    assert charts.checked == 40 and records.mismatched == 0
    assert record.rto is not None and record.rto.measured_seconds is not None
    assert scratch_left(seeded, aws) == []


def test_drctl_drill_restore_exits_0_and_prints_the_sealed_record(
        seeded: Sandbox, sandbox_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["drill", "restore", "--sample", "3", "--output", "json"], env=sandbox_env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    record = EvidenceRecord.model_validate_json(result.stdout)
    assert record.kind == "restore-drill" and record.record_hash and record.verifications[1].checked == 3
    assert list((tmp_path / ".ehr-dr" / "evidence" / seeded.topology.env_name).glob("*.json"))
    dr = seeded.topology.in_region(seeded.topology.dr_region)
    kept = seeded.client("s3", dr.region).list_objects_v2(Bucket=dr.evidence_bucket)["Contents"]
    assert any(record.run_id in item["Key"] for item in kept), "sealed in the DR region's Object Lock bucket"


def test_a_sample_checks_only_that_many_chart_files(seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    _, record = restore_drill(seeded, aws, tmp_path, sample=5)
    charts = record.verifications[1]
    assert charts.checked == 5 and "random sample" in charts.how


def test_a_chart_file_changed_after_its_checksum_was_stored_fails_the_drill_naming_it(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    primary = seeded.topology.primary_region
    bucket = seeded.topology.in_region(primary).chart_bucket
    s3 = seeded.client("s3", primary)
    key = s3.list_objects_v2(Bucket=bucket, Prefix="charts/")["Contents"][0]["Key"]
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=original + b"tampered", ChecksumAlgorithm="SHA256")
    try:
        take_backups(aws, seeded.topology)
        run, record = restore_drill(seeded, aws, tmp_path)
    finally:
        s3.put_object(Bucket=bucket, Key=key, Body=original, ChecksumAlgorithm="SHA256")
        take_backups(aws, seeded.topology)
    assert run.status == "failed" and not record.passed
    assert "do not match the SHA-256 their scan row stores (corrupted)" in (run.error or "")
    assert key in (run.error or "")
    assert record.verifications[1].result == "failed" and record.verifications[1].mismatched == 1
    assert scratch_left(seeded, aws) == [], "validation failed, teardown still ran"
    report = render_markdown(build_report([record], [record], [], 0.9995, datetime.now(UTC)))
    assert "(corrupted)" in report and key in report


def test_a_restore_from_before_the_latest_canary_reports_the_rpo(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    topology = seeded.topology
    backed_up = take_backups(aws, topology)
    primary, dr = topology.primary_region, topology.dr_region

    def endpoint(region: str, reader: bool = False):
        return db_endpoint(aws.client("rds", region), aws.client("secretsmanager", region),
                           topology.in_region(region).db_cluster_id, topology.db_secret_name,
                           topology.database_name, reader=reader)

    PostgresCanary().write(endpoint(primary), "rpo-test-canary", primary)
    take_backups(aws, topology)  # a newer backup exists: the drill is asked for the older one
    assert PostgresCanary().find(endpoint(dr, reader=True), "rpo-test-canary") is not None
    run, record = restore_drill(seeded, aws, tmp_path, recovery_points=[backed_up.database, backed_up.archive])
    assert run.status == "succeeded", run.error
    assert record.rpo is not None and record.rpo.measured_seconds and record.rpo.measured_seconds > 0
    assert any("older than the newest canary" in error.message for error in record.errors)


def test_a_named_recovery_point_that_does_not_exist_fails_as_missing(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    run, record = restore_drill(seeded, aws, tmp_path, recovery_points=["arn:aws:backup:us-west-1:1:recovery-point:x"])
    assert not record.passed
    assert run.status == "failed" and "backup missing: the named recovery point" in (run.error or "")


def test_an_interrupted_teardown_is_cleaned_up_by_the_next_drill(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def killed(ctx: object) -> None:
        raise RuntimeError("process killed before teardown")

    with monkeypatch.context() as patch:
        patch.setattr(restore, "teardown", killed)
        patch.setattr(running, "scratch", SimpleNamespace(remove=lambda *args, **kwargs: []))
        first, _ = restore_drill(seeded, aws, tmp_path / "first")
    left = scratch_left(seeded, aws)
    assert first.status == "failed" and len(left) == 2
    run, record = restore_drill(seeded, aws, tmp_path / "next")
    assert run.status == "succeeded", run.error
    assert sorted(run.steps["clean-leftovers"].outputs["removed"]) == sorted(left)
    assert any(check.what.startswith("leftovers of an interrupted drill") for check in record.verifications)
    assert scratch_left(seeded, aws) == []
