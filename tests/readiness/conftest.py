"""A sandbox estate that evaluates ready, and how to read one check of `drctl evaluate --output json`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import Result
from runbooks.conftest import aurora_timings, drctl  # noqa: F401 (fixtures, for this package's tests)

from dr_runbooks.drills.plans import RESTORE_LABEL
from dr_runbooks.engine.journal import new_run_id
from dr_runbooks.evidence.record import EvidenceRecord, Identity
from dr_runbooks.evidence.store import EvidenceLog, S3EvidenceBucket
from ehr_dr_sandbox.api import Sandbox


def record_restore_drill(sandbox: Sandbox, ended_at: datetime, outcome: str = "succeeded") -> EvidenceRecord:
    """A restore drill's evidence record in the DR region's evidence bucket, as a drill run there leaves it."""
    dr = sandbox.topology.dr_region
    record = EvidenceRecord(
        run_id=new_run_id(RESTORE_LABEL, dr), kind="restore-drill", environment=sandbox.config.env_name,
        to_region=dr, identity=Identity(caller_arn="arn:aws:sts::123456789012:assumed-role/scheduler", mfa_used=False),
        started_at=ended_at - timedelta(minutes=20), ended_at=ended_at, outcome=outcome, sandbox=True)
    bucket = S3EvidenceBucket(sandbox.client("s3", dr), sandbox.topology.in_region(dr).evidence_bucket)
    return EvidenceLog(sandbox.config.env_name, [bucket]).append(record)


@pytest.fixture(scope="module")
def estate(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The sandbox once its backup plan ran an hour (recovery points copied into the DR vault) and a restore drill
    passed an hour ago: what a deployed, healthy estate has."""
    sandbox.action("backup-plan-now")
    record_restore_drill(sandbox, datetime.now(UTC) - timedelta(hours=1))
    yield sandbox


def evaluated(result: Result) -> dict[str, Any]:
    return json.loads(result.stdout)


def checks(result: Result) -> dict[str, dict[str, Any]]:
    """Each check by name (`<check>` or `<check> (<region>)`)."""
    return {(check["check"] if check["region"] is None else f"{check['check']} ({check['region']})"): check
            for check in evaluated(result)["checks"]}


def failing(result: Result) -> dict[str, str]:
    """The checks that did not pass, with their reasons."""
    return {name: check["reason"] for name, check in checks(result).items() if check["verdict"] != "pass"}
