"""Drills against the module's sandbox: seeded small, backed up by the test that needs a backup."""

from __future__ import annotations

from pathlib import Path

import pytest

from dr_runbooks.drills import running
from dr_runbooks.engine.journal import RunRecord
from dr_runbooks.evidence.record import EvidenceRecord
from dr_runbooks.session import AwsSession, boto_session
from ehr_dr_sandbox.api import SANDBOX_CREDENTIALS, Sandbox


@pytest.fixture(scope="module")
def seeded(sandbox: Sandbox) -> Sandbox:
    sandbox.seed(patients=20, files_per_patient=2)
    sandbox.action("replication-drain", timeout=30)
    return sandbox


@pytest.fixture(scope="module")
def aws(sandbox: Sandbox) -> AwsSession:
    boto = boto_session(aws_access_key_id=SANDBOX_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=SANDBOX_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                        region_name=sandbox.config.primary_region)
    return AwsSession(boto, endpoint_url=sandbox.endpoint_url)


def restore_drill(sandbox: Sandbox, aws: AwsSession, tmp_path: Path, **params: object) -> tuple[RunRecord,
                                                                                               EvidenceRecord]:
    """Run a restore drill (all chart files checked unless `sample=` says otherwise) and seal its evidence."""
    ctx = running.new_restore_context(aws, sandbox.topology, {"sample": None, **params}, "tester", tmp_path / "runs")
    run = running.run_restore_drill(ctx)
    record = running.append_evidence(aws, sandbox.topology, running.restore_evidence(run, sandbox.topology, True),
                                     tmp_path / "evidence")
    return run, record


def scratch_left(sandbox: Sandbox, aws: AwsSession) -> list[str]:
    from dr_runbooks.drills import scratch

    region = sandbox.topology.dr_region
    env = sandbox.topology.env_name
    return (scratch.scratch_clusters(aws.client("rds", region), env)
            + scratch.scratch_buckets(aws.client("s3", region), env))
