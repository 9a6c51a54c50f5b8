"""Helpers for the on-call commands run in-process against the module's sandbox."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dr_runbooks.cli import cli
from dr_runbooks.observe import probes
from dr_runbooks.runbooks.canary import HEARTBEAT_PREFIX, DbEndpoint, db_endpoint
from ehr_dr_sandbox.api import Sandbox
from ehr_dr_sandbox.aurora_global import Timings

#: Every changing command runs as the on-call engineer does: the dr-operator role, assumed with MFA.
MFA = ["--mfa-serial", "arn:aws:iam::123456789012:mfa/oncall", "--mfa-code", "123456", "--assume-operator"]


@pytest.fixture
def drctl(sandbox_env: dict[str, str], tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run `drctl ARGS` in-process against the sandbox, in a fresh working dir (journals land in .ehr-dr/ there)."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=sandbox_env, catch_exceptions=False)

    return run


def report_lag(sandbox: Sandbox, region: str, seconds: float) -> None:
    """Publish `AuroraGlobalDBReplicationLag` of the region's cluster, as Aurora does every minute."""
    sandbox.client("cloudwatch", region).put_metric_data(
        Namespace="AWS/RDS",
        MetricData=[{
            "MetricName": "AuroraGlobalDBReplicationLag",
            "Dimensions": [{"Name": "DBClusterIdentifier", "Value": sandbox.topology.in_region(region).db_cluster_id}],
            "Timestamp": datetime.now(UTC),
            "Value": seconds * 1000,
            "Unit": "Milliseconds",
        }],
    )


def estate_state(sandbox: Sandbox) -> dict[str, Any]:
    """What a runbook could change: runbook tables, chart buckets, writer, gate alarms (to assert 'nothing changed').
    Heartbeat objects are the sandbox's schedule, not a runbook's: they are left out."""
    topology = sandbox.topology
    state: dict[str, Any] = {}
    for region, resources in topology.regions.items():
        items = sandbox.client("dynamodb", region).scan(TableName=resources.runbook_table)["Items"]
        objects = sandbox.client("s3", region).list_object_versions(Bucket=resources.chart_bucket)
        cluster = sandbox.client("rds", region).describe_global_clusters(
            GlobalClusterIdentifier=topology.global_cluster_id)["GlobalClusters"][0]
        alarms = sandbox.client("cloudwatch", region).describe_alarms()["MetricAlarms"]
        state[region] = {
            "items": sorted(json.dumps(item, sort_keys=True) for item in items),
            "objects": sorted(version["VersionId"] for version in objects.get("Versions", [])
                              if not version["Key"].startswith(HEARTBEAT_PREFIX)),
            "writers": sorted(m["DBClusterArn"] for m in cluster["GlobalClusterMembers"] if m["IsWriter"]),
            "alarms": sorted((alarm["AlarmName"], alarm["StateValue"]) for alarm in alarms),
        }
    return state


def heartbeat(sandbox: Sandbox) -> dict[str, Any]:
    """One beat of the sandbox's heartbeat schedule now (instead of waiting for its minute), replicated."""
    beaten = sandbox.action("heartbeat-now")
    sandbox.action("replication-drain", timeout=10)
    return beaten


def database(sandbox: Sandbox, region: str, reader: bool = False) -> DbEndpoint:
    """How to reach the records database of `region`'s cluster, as the runbooks find it."""
    topology = sandbox.topology
    return db_endpoint(sandbox.client("rds", region), sandbox.client("secretsmanager", region),
                       topology.in_region(region).db_cluster_id, topology.db_secret_name, topology.database_name,
                       reader=reader)


def wait_connected(sandbox: Sandbox, timeout: float = 60) -> None:
    """Until every member of the global cluster is `connected` (a failover's rebuild of the old primary is over)."""
    rds = sandbox.client("rds", sandbox.topology.dr_region)
    deadline = time.monotonic() + timeout
    while not all(member.connected for member in
                  probes.global_cluster(rds, sandbox.topology.global_cluster_id).members):
        assert time.monotonic() < deadline, f"a member still rebuilding after {timeout}s"
        time.sleep(0.1)


@pytest.fixture
def aurora_timings(sandbox: Sandbox) -> Iterator[Callable[..., Any]]:
    """Set the sandbox's Aurora timings (`aurora-timings`) for one test; AWS-like defaults again after it."""
    yield lambda **seconds: sandbox.action("aurora-timings", **seconds)
    sandbox.action("aurora-timings", **asdict(Timings()))
