"""The failover game day on a sandbox: both legs, RTO/RPO per leg, the budget gate, and the replication check."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from dr_runbooks.cli import cli
from dr_runbooks.drills.gameday import verify_archives
from dr_runbooks.evidence.store import EvidenceLog, LocalEvidenceDir
from dr_runbooks.observe import probes
from dr_runbooks.session import AwsSession
from dr_runbooks.verify.compare import ReplicationComparison, Side
from dr_runbooks.verify.repair import redrive_all
from ehr_dr_sandbox.api import Sandbox

from .test_budget import charge

#: Every changing command runs as the on-call engineer does: the dr-operator role, assumed with MFA.
MFA = ["--mfa-serial", "arn:aws:iam::123456789012:mfa/oncall", "--mfa-code", "123456", "--assume-operator"]


def _writer(sandbox: Sandbox) -> str | None:
    cluster = probes.global_cluster(sandbox.client("rds", sandbox.topology.dr_region),
                                    sandbox.topology.global_cluster_id)
    writer = cluster.writer()
    return writer.region if writer else None


def _game_day(sandbox_env: dict[str, str], evidence_dir: Path, tmp_path: Path, monkeypatch) -> object:
    monkeypatch.chdir(tmp_path)
    return CliRunner().invoke(cli, ["drill", "failover", "--yes", "--evidence-dir", str(evidence_dir), *MFA],
                              env=sandbox_env, catch_exceptions=False)


def test_a_game_day_switches_to_dr_and_back_measuring_each_leg(
        seeded: Sandbox, sandbox_env: dict[str, str], tmp_path: Path, monkeypatch) -> None:
    evidence = tmp_path / "evidence"
    result = _game_day(sandbox_env, evidence, tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    assert _writer(seeded) == seeded.topology.primary_region
    chain = EvidenceLog(seeded.topology.env_name, [LocalEvidenceDir(evidence)]).load_chain()
    assert [record.kind for record in chain] == ["switchover", "switchover", "failover-drill"]
    assert [record.to_region for record in chain[:2]] == [seeded.topology.dr_region, seeded.topology.primary_region]
    game = chain[-1]
    assert game.passed and game.rto is not None and game.rto.measured_seconds is not None
    legs = [check for check in game.verifications if check.what.startswith("leg ")]
    assert len(legs) == 2 and all("RTO" in check.detail and "RPO" in check.detail for check in legs)
    assert game.downtime_seconds > 0, "the measured downtime is charged to the availability budget"
    assert {step.name for step in game.timeline} >= {"verify-replication", "serve-from-dr"}


def test_a_game_day_is_refused_with_exit_2_and_nothing_changed_when_the_budget_is_spent(
        seeded: Sandbox, sandbox_env: dict[str, str], tmp_path: Path, monkeypatch) -> None:
    evidence = tmp_path / "evidence"
    charge(evidence, 10, datetime.now(UTC))
    writer = _writer(seeded)
    result = _game_day(sandbox_env, evidence, tmp_path, monkeypatch)
    assert result.exit_code == 2
    assert "availability budget" in result.output and "nothing changed" in result.output
    assert _writer(seeded) == writer
    assert len(EvidenceLog(seeded.topology.env_name, [LocalEvidenceDir(evidence)]).load_chain()) == 1
    assert not (tmp_path / ".ehr-dr" / "runs").exists(), "no journal was started"


def test_paused_replication_fails_the_archive_check_listing_the_missing_version_and_repair_fixes_it(
        seeded: Sandbox, aws: AwsSession, sandbox_faults) -> None:
    topology = seeded.topology
    primary = topology.primary_region
    bucket = topology.in_region(primary).chart_bucket
    sandbox_faults.pause_replication()
    seeded.client("s3", primary).put_object(Bucket=bucket, Key="charts/p9/pt9/late.pdf", Body=b"%PDF late",
                                            ChecksumAlgorithm="SHA256")
    check = verify_archives(aws, topology, primary)
    assert check.result == "failed" and check.mismatched == 1 and check.detail == "missing-on-replica: 1"
    report = ReplicationComparison(Side(aws.client("s3", primary), bucket),
                                   Side(aws.client("s3", topology.dr_region),
                                        topology.in_region(topology.dr_region).chart_bucket)).run()
    repairs = redrive_all(aws.client("s3", primary), bucket, report.differences)
    assert [(repair.key, repair.error) for repair in repairs] == [("charts/p9/pt9/late.pdf", None)]
    sandbox_faults.resume_replication()
    seeded.action("replication-drain", timeout=10)
    assert verify_archives(aws, topology, primary).result == "passed"
