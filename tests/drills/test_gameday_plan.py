"""The game day as an engine plan: its shape, the child-run summary of a leg, the budget read from the evidence
buckets of both regions (moto in-process, no sandbox)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from dr_runbooks.config import DeploymentConfig
from dr_runbooks.drills.gameday import evidence_in_buckets
from dr_runbooks.drills.gameday_plan import game_day, game_day_preflight
from dr_runbooks.drills.legs import ChildRunFailed, child_summary
from dr_runbooks.engine.journal import RunRecord, StepRecord
from dr_runbooks.engine.plan import ChildRun
from dr_runbooks.evidence.record import EvidenceRecord, Identity
from dr_runbooks.evidence.store import EvidenceLog, S3EvidenceBucket
from dr_runbooks.runbooks.estate import Refused
from dr_runbooks.session import AwsSession, boto_session
from dr_runbooks.topology import build_topology

TOPOLOGY = build_topology(DeploymentConfig(env_name="demo", account="123456789012"))  # RTO 15 min, 21.9 min a month


def test_the_game_day_plan_switches_to_dr_checks_there_switches_back_then_judges() -> None:
    plan = game_day()
    assert plan.runbook == "game-day" and plan.locks is False
    assert plan.graph() == {
        "switchover-to-dr": (),
        "verify-replication": ("switchover-to-dr",),
        "serve-from-dr": ("switchover-to-dr",),
        "switchover-to-primary": ("verify-replication", "serve-from-dr"),
        "verdict": ("switchover-to-primary",),
    }
    plan.verify_actions()


def test_the_legs_are_child_switchover_runs_and_only_serving_connects_to_a_database() -> None:
    plan = game_day()
    assert {step.name: step.child for step in plan.steps if step.child} == {
        "switchover-to-dr": ChildRun(runbook="switchover", target="dr"),
        "switchover-to-primary": ChildRun(runbook="switchover", target="primary")}
    assert {step.name: step.database for step in plan.steps if step.database} == {"serve-from-dr": "target"}


def _child(status: str, **outputs: object) -> RunRecord:
    now = time.time()
    run = RunRecord(run_id="20261122T120000Z-switchover-us-west-1-abcdef", runbook="switchover", env_name="demo",
                    target_region="us-west-1", params={}, operator="tester", mfa=True, status=status,
                    started_at=now - 60, ended_at=now, error=None if status == "succeeded" else "step x failed: boom")
    run.steps["record-objectives"] = StepRecord(name="record-objectives", status="succeeded", started_at=now - 1,
                                                ended_at=now, outputs=outputs)
    return run


def test_a_succeeded_child_run_is_summarised_with_its_measured_objectives() -> None:
    summary = child_summary(_child("succeeded", rto_seconds=42.5, rpo_seconds=0.0))
    assert summary["run_id"] == "20261122T120000Z-switchover-us-west-1-abcdef"
    assert (summary["status"], summary["target_region"], summary["rto_seconds"], summary["rpo_seconds"],
            summary["error"]) == ("succeeded", "us-west-1", 42.5, 0.0, None)


def test_a_failed_child_run_fails_the_leg_naming_the_run_and_its_error() -> None:
    with pytest.raises(ChildRunFailed, match=r"switchover 20261122T120000Z-switchover-us-west-1-abcdef to us-west-1 "
                                             r"failed: step x failed: boom"):
        child_summary(_child("failed"))


@pytest.fixture
def buckets() -> Iterator[AwsSession]:
    """Both regions' Object Lock evidence buckets in moto; the session the preflight reads them with."""
    with mock_aws():
        for region in TOPOLOGY.regions:
            where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            boto3.client("s3", region_name=region).create_bucket(
                Bucket=TOPOLOGY.in_region(region).evidence_bucket, ObjectLockEnabledForBucket=True, **where)
        yield AwsSession(boto_session(region_name=TOPOLOGY.dr_region))


def _charge(aws: AwsSession, region: str, minutes: float, run_id: str) -> None:
    now = datetime.now(UTC)
    record = EvidenceRecord(
        run_id=run_id, kind="failover", environment="demo", to_region=region,
        identity=Identity(caller_arn="arn:aws:iam::123456789012:user/oncall", mfa_used=True),
        started_at=now - timedelta(minutes=minutes), ended_at=now, outcome="succeeded",
        downtime_seconds=minutes * 60, sandbox=False)
    bucket = S3EvidenceBucket(aws.client("s3", region), TOPOLOGY.in_region(region).evidence_bucket)
    EvidenceLog("demo", [bucket]).append(record)


def test_the_budget_counts_the_downtime_recorded_in_both_regions_buckets(buckets: AwsSession) -> None:
    _charge(buckets, TOPOLOGY.primary_region, 4, "outage-east")
    _charge(buckets, TOPOLOGY.dr_region, 3, "outage-west")
    assert sorted(record.run_id for record in evidence_in_buckets(buckets, TOPOLOGY)) == ["outage-east",
                                                                                          "outage-west"]


def test_a_region_whose_evidence_bucket_does_not_answer_is_skipped(buckets: AwsSession) -> None:
    _charge(buckets, TOPOLOGY.dr_region, 3, "outage-west")
    primary = buckets.client("s3", TOPOLOGY.primary_region)
    primary.delete_bucket(Bucket=TOPOLOGY.in_region(TOPOLOGY.primary_region).evidence_bucket)
    assert [record.run_id for record in evidence_in_buckets(buckets, TOPOLOGY)] == ["outage-west"]


def test_a_game_day_is_refused_before_anything_when_the_buckets_show_the_budget_spent(buckets: AwsSession) -> None:
    _charge(buckets, TOPOLOGY.primary_region, 4, "outage-east")
    _charge(buckets, TOPOLOGY.dr_region, 6, "outage-west")
    with pytest.raises(Refused, match=r"availability budget: 11\.9 min of downtime left .*nothing changed"):
        game_day_preflight(buckets, TOPOLOGY, TOPOLOGY.dr_region)
    assert buckets.client("dynamodb", TOPOLOGY.dr_region).list_tables()["TableNames"] == [], "no journal"


def test_a_game_day_runs_only_from_the_dr_region(buckets: AwsSession) -> None:
    with pytest.raises(Refused, match=r"a game day runs from the DR region us-west-1, not us-east-1"):
        game_day_preflight(buckets, TOPOLOGY, TOPOLOGY.primary_region)
