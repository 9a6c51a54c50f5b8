"""`drctl backup` as a user runs it: a separate process on the sandbox's environment, exit codes, streams, the
recovery points in both vaults and the evidence. One module (one sandbox); tests do not assume which region writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dr_runbooks.evidence.record import EvidenceRecord
from dr_runbooks.evidence.store import S3EvidenceBucket
from dr_runbooks.observe import probes
from ehr_dr_sandbox.api import Sandbox
from ehr_dr_sandbox.faults import FaultsClient

DRCTL = [sys.executable, "-c", "from dr_runbooks.cli import main; main()"]
#: Every changing command runs as the on-call engineer does: the dr-operator role, assumed with MFA.
MFA = ["--mfa-serial", "arn:aws:iam::123456789012:mfa/oncall", "--mfa-code", "123456", "--assume-operator"]


def drctl(sandbox: Sandbox, cwd: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    variables = {**os.environ, **sandbox.env}
    variables.pop("AWS_PROFILE", None)
    return subprocess.run([*DRCTL, *args], env=variables, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False, stdin=subprocess.DEVNULL)


def writer(sandbox: Sandbox) -> str:
    found = probes.global_cluster(sandbox.client("rds", "us-west-1"), sandbox.topology.global_cluster_id).writer()
    assert found is not None
    return found.region


def recovery_points(sandbox: Sandbox, region: str) -> list[dict[str, Any]]:
    """Every recovery point of `region`'s vault, all pages."""
    pages = sandbox.client("backup", region).get_paginator("list_recovery_points_by_backup_vault").paginate(
        BackupVaultName=sandbox.topology.in_region(region).backup_vault)
    return [point for page in pages for point in page["RecoveryPoints"]]


def backed_up(sandbox: Sandbox, tmp_path: Path) -> dict[str, Any]:
    done = drctl(sandbox, tmp_path, "backup", "--output", "json", "--timeout", "120")
    assert done.returncode == 0, done.stderr + done.stdout
    return dict(json.loads(done.stdout))


def test_a_backup_lands_in_the_writers_vault_and_its_copy_in_the_other(sandbox: Sandbox, tmp_path: Path) -> None:
    topology = sandbox.topology
    source = writer(sandbox)
    partner = topology.partner(source)

    summary = backed_up(sandbox, tmp_path)

    assert (summary["region"], summary["copied_to"], summary["passed"]) == (source, partner, True)
    copies = {point["RecoveryPointArn"]: point for point in recovery_points(sandbox, partner)}
    for data_set, resource in (("database", f"arn:aws:rds:{source}:{topology.account}:cluster:"
                                            f"{topology.in_region(source).db_cluster_id}"),
                               ("archive", f"arn:aws:s3:::{topology.in_region(source).chart_bucket}")):
        copy = copies[summary["copies"][data_set]]
        assert (copy["Status"], copy["ResourceArn"]) == ("COMPLETED", resource)
        assert copy["SourceBackupVaultArn"].endswith(f":backup-vault:{topology.in_region(source).backup_vault}")
        assert any(point["ResourceArn"] == resource and point["Status"] == "COMPLETED"
                   for point in recovery_points(sandbox, source))


def test_a_backup_is_recorded_as_evidence_of_the_data_backup_plan(sandbox: Sandbox, tmp_path: Path) -> None:
    summary = backed_up(sandbox, tmp_path)

    local = sorted((tmp_path / ".ehr-dr" / "evidence" / sandbox.topology.env_name).glob("*.json"))
    record = EvidenceRecord.model_validate_json(local[-1].read_bytes())
    assert (record.run_id, record.kind, record.hipaa, record.passed) == (summary["run_id"], "backup", ("A",), True)
    assert {step.name for step in record.timeline} == {"backup-database", "backup-archive", "copy-database",
                                                       "copy-archive"}
    assert [check.result for check in record.verifications] == ["passed", "passed"]
    bucket = S3EvidenceBucket.of_region(sandbox.topology, summary["copied_to"], _Clients(sandbox))
    assert any(name.endswith(f"-{record.run_id}.json") for name in bucket.names(sandbox.topology.env_name))


class _Clients:
    """What `S3EvidenceBucket.of_region` asks of a session: clients by region."""

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def client(self, service: str, region_name: str) -> Any:
        return self.sandbox.client(service, region_name)


def test_after_a_switchover_the_backup_is_taken_in_the_new_writers_region(sandbox: Sandbox, tmp_path: Path) -> None:
    target = sandbox.topology.partner(writer(sandbox))
    moved = drctl(sandbox, tmp_path, "switchover", "--to", target, "--yes", "--output", "json", *MFA)
    assert moved.returncode == 0, moved.stderr
    assert writer(sandbox) == target

    summary = backed_up(sandbox, tmp_path)

    assert (summary["region"], summary["copied_to"]) == (target, sandbox.topology.partner(target))
    assert summary["copies"]["database"].startswith(f"arn:aws:backup:{sandbox.topology.partner(target)}:")


def test_a_dark_writer_region_is_refused_in_seconds_with_nothing_started(sandbox: Sandbox,
                                                                         sandbox_faults: FaultsClient,
                                                                         tmp_path: Path) -> None:
    dark = writer(sandbox)
    partner = sandbox.topology.partner(dark)
    copies_before = len(recovery_points(sandbox, partner))
    sandbox_faults.region_down(dark)
    started = time.monotonic()
    done = drctl(sandbox, tmp_path, "backup")
    seconds = time.monotonic() - started

    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"refused: the writer's region {dark} does not answer")
    assert len(done.stderr.strip().splitlines()) == 1
    assert seconds < 15, seconds
    assert len(recovery_points(sandbox, partner)) == copies_before


def test_a_copy_that_failed_makes_failed_evidence_naming_it(sandbox: Sandbox) -> None:
    from datetime import UTC, datetime

    from dr_runbooks.commands.backup import backup_evidence
    from dr_runbooks.drills.backups import Job
    from dr_runbooks.evidence.record import Identity

    topology, now = sandbox.topology, datetime.now(UTC)
    region = topology.primary_region
    jobs = (Job("database", "StartBackupJob", region, "B1", now, now, "COMPLETED", "arn:rp:1"),
            Job("archive", "StartBackupJob", region, "B2", now, now, "COMPLETED", "arn:rp:2"),
            Job("database", "StartCopyJob", region, "C1", now, now, "COMPLETED", "arn:rp:3"),
            Job("archive", "StartCopyJob", region, "C2", now, now, "FAILED", None, "access denied"))

    record = backup_evidence(topology, region, Identity(caller_arn="arn:aws:iam::1:user/x", mfa_used=False), now,
                             jobs, "StartCopyJob C2 (archive) ended FAILED: access denied", sandbox=True)

    assert not record.passed and record.outcome == "failed"
    assert [check.result for check in record.verifications] == ["passed", "failed"]
    assert next(step for step in record.timeline if step.name == "copy-archive").detail == "C2 FAILED: access denied"
