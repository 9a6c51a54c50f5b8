"""In-process moto estate for engine tests: a topology, the runbook table in the target region, a run factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from dr_runbooks.config import DeploymentConfig
from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.journal import Journal, RunRecord, new_run_id
from dr_runbooks.engine.lock import RunLock
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology, build_topology

TARGET = "us-west-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsSession]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield AwsSession(boto3.session.Session())


@pytest.fixture
def topology() -> Topology:
    return build_topology(DeploymentConfig(env_name="enginetest", account="123456789012"))


@pytest.fixture
def table(aws: AwsSession, topology: Topology) -> str:
    name = topology.in_region(TARGET).runbook_table
    aws.client("dynamodb", TARGET).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@pytest.fixture
def lock(aws: AwsSession, topology: Topology, table: str) -> RunLock:
    """The lock over the one runbook table this estate has (a short lease: a crashed run is seen dead quickly)."""
    return RunLock(aws, {TARGET: table}, topology.env_name, required=TARGET, lease_seconds=2)


@pytest.fixture
def journal_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def make_context(
    aws: AwsSession, topology: Topology, table: str, journal_dir: Path
) -> Callable[..., RunContext]:
    """A fresh context for a new run, or for `run_id` rebuilt from the journal (as `drctl resume` does)."""

    def make(run_id: str | None = None, **params: object) -> RunContext:
        journal = Journal(aws, TARGET, table, journal_dir)
        if run_id is not None:
            run = journal.load(run_id)
        else:
            run = RunRecord(
                run_id=new_run_id("test", TARGET),
                runbook="test",
                env_name=topology.env_name,
                target_region=TARGET,
                params=dict(params),
                operator="arn:aws:iam::123456789012:user/oncall",
                mfa=True,
            )
        return RunContext(run=run, topology=topology, aws=aws, journal=journal)

    return make
