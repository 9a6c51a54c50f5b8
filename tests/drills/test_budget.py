"""The game day's availability-budget gate, from the local evidence chain (no sandbox needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from dr_runbooks.cli import cli
from dr_runbooks.config import DeploymentConfig
from dr_runbooks.drills.gameday import check_budget
from dr_runbooks.evidence.record import EvidenceRecord, Identity
from dr_runbooks.evidence.store import EvidenceLog, LocalEvidenceDir
from dr_runbooks.runbooks.estate import Refused
from dr_runbooks.topology import build_topology

TOPOLOGY = build_topology(DeploymentConfig(env_name="demo", account="123456789012"))  # RTO 15 min, 21.9 min a month
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


def charge(evidence_dir: Path, minutes: float, when: datetime = NOW) -> None:
    record = EvidenceRecord(
        run_id=f"outage-{when:%Y%m%d}-{minutes:g}", kind="failover", environment="demo",
        identity=Identity(caller_arn="arn:aws:iam::123456789012:user/oncall", mfa_used=True),
        started_at=when - timedelta(minutes=minutes), ended_at=when, outcome="succeeded",
        downtime_seconds=minutes * 60, sandbox=False)
    EvidenceLog("demo", [LocalEvidenceDir(evidence_dir)]).append(record)


def test_a_month_without_recorded_downtime_allows_a_game_day(tmp_path: Path) -> None:
    assert check_budget(TOPOLOGY, tmp_path, NOW).month.left_minutes == pytest.approx(21.9, abs=0.05)


def test_a_game_day_is_refused_when_the_rest_of_the_month_cannot_absorb_the_rto_target(tmp_path: Path) -> None:
    charge(tmp_path, 10)
    with pytest.raises(Refused, match=r"11\.9 min of downtime left in November 2026.*RTO target of 15 min"):
        check_budget(TOPOLOGY, tmp_path, NOW)


def test_downtime_of_last_month_does_not_count(tmp_path: Path) -> None:
    charge(tmp_path, 20, NOW - timedelta(days=30))
    assert check_budget(TOPOLOGY, tmp_path, NOW).month.used_minutes == 0


def test_restore_refuses_random_together_with_a_named_recovery_point() -> None:
    result = CliRunner().invoke(cli, ["drill", "restore", "--env", "demo", "--random", "--recovery-point", "arn:x"])
    assert result.exit_code == 2
    assert "refused: --random and --recovery-point exclude each other" in result.output


def test_all_needs_the_sandbox_flag() -> None:
    result = CliRunner().invoke(cli, ["drill", "all"])
    assert result.exit_code == 2 and "Missing option '--sandbox'" in result.output
