"""A replication check as an evidence record: what was verified, how, with which result and counts."""

from __future__ import annotations

from datetime import UTC, datetime

from dr_runbooks.evidence.record import Identity
from dr_runbooks.verify.evidence import replication_evidence
from dr_runbooks.verify.model import Difference, ObjectState, Repair, ReplicationReport

START = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def _report(**fields):
    base = {"source": "s3://a", "replica": "s3://b", "mode": "list", "listing": "current", "deep": True,
            "compared": 1200, "differences": [], "requests": 10, "seconds": 4.0}
    return ReplicationReport(**{**base, **fields})


def _record(report):
    return replication_evidence(report, run_id="verify-1", environment="demo", source_region="us-east-1",
                                replica_region="us-west-1", started_at=START, sandbox=True,
                                identity=Identity(caller_arn="arn:aws:iam::123456789012:user/ops", mfa_used=False))


def test_an_archive_in_sync_is_a_passed_verification_for_paragraph_a():
    record = _record(_report())
    assert record.passed and record.hipaa == ("A",)
    verification = record.verifications[0]
    assert (verification.result, verification.checked, verification.mismatched) == ("passed", 1200, 0)
    assert "SHA-256" in verification.how


def test_differences_fail_the_record_and_are_counted_as_errors():
    missing = Difference(key="k", kind="missing-on-replica", source=ObjectState(key="k", size=1))
    record = _record(_report(differences=[missing]))
    assert not record.passed
    assert record.verifications[0].detail == "missing-on-replica: 1"
    assert [error.message for error in record.errors] == ["1 keys missing-on-replica"]


def test_redrives_appear_on_the_timeline():
    missing = Difference(key="k", kind="missing-on-replica", source=ObjectState(key="k", size=1))
    record = _record(_report(differences=[missing], repairs=[Repair(key="k", source_version_id="1",
                                                                     new_version_id="2")]))
    assert [step.name for step in record.timeline] == ["compare-archives", "redrive-replication"]
    assert record.timeline[1].aws_calls[0].operation == "CopyObject"
