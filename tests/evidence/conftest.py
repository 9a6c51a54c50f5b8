"""Evidence records for tests: a valid record whose fields a test overrides to state the one fact it is about."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dr_runbooks.evidence.chain import seal
from dr_runbooks.evidence.record import (
    AwsCall,
    EvidenceRecord,
    Identity,
    Objective,
    RunError,
    Step,
    Verification,
)

T0 = datetime(2026, 11, 3, 14, 0, tzinfo=UTC)


def _make_record(**overrides: Any) -> EvidenceRecord:
    """A succeeded failover drill of environment `demo` on the sandbox, starting at `T0`, lasting 5 minutes."""
    fields: dict[str, Any] = {
        "run_id": "run-1",
        "kind": "failover-drill",
        "environment": "demo",
        "from_region": "us-east-1",
        "to_region": "us-west-1",
        "identity": Identity(
            caller_arn="arn:aws:sts::123456789012:assumed-role/ehr-dr-demo-dr-operator/alice",
            account="123456789012",
            mfa_used=True,
            role_arn="arn:aws:iam::123456789012:role/ehr-dr-demo-dr-operator",
        ),
        "started_at": T0,
        "ended_at": T0 + timedelta(minutes=5),
        "outcome": "succeeded",
        "timeline": (
            Step(
                name="promote-secondary",
                started_at=T0,
                ended_at=T0 + timedelta(minutes=2),
                outcome="succeeded",
                aws_calls=(AwsCall(service="rds", operation="SwitchoverGlobalCluster", region="us-west-1"),),
            ),
            Step(
                name="shift-traffic",
                started_at=T0 + timedelta(minutes=2),
                ended_at=T0 + timedelta(minutes=4),
                outcome="succeeded",
            ),
        ),
        "rto": Objective(measured_seconds=240, target_seconds=900, how="first successful read in the DR region"),
        "rpo": Objective(measured_seconds=3, target_seconds=900, how="age of the newest canary row found"),
        "downtime_seconds": 120,
        "verifications": (
            Verification(what="canary rows", how="SELECT by canary id in the DR writer", result="passed", checked=1),
        ),
        "sandbox": True,
    }
    return EvidenceRecord(**{**fields, **overrides})


@pytest.fixture
def make_record() -> Callable[..., EvidenceRecord]:
    """A succeeded failover drill of environment `demo` on the sandbox, started 2026-11-03 14:00 UTC, lasting 5 min."""
    return _make_record


@pytest.fixture
def sealed_chain(make_record) -> list[EvidenceRecord]:
    """Two sealed records: a passed failover drill (`drill-1`) and a failed restore drill (`restore-1`)."""
    first = seal(make_record(run_id="drill-1"), None)
    failed = make_record(
        run_id="restore-1",
        kind="restore-drill",
        outcome="failed",
        rto=None,
        rpo=Objective(measured_seconds=1200, target_seconds=900, how="newest restored canary row"),
        downtime_seconds=0,
        verifications=(
            Verification(what="chart files", how="SHA-256 of each restored file against its scan row",
                         result="failed", checked=50, mismatched=1, detail="charts/p1/pt9/s3.pdf changed"),
        ),
        errors=(RunError(message="1 chart file does not match its stored checksum", step="validate-charts"),),
    )
    return [first, seal(failed, first)]
