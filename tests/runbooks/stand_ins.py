"""Stand-ins for what sandbox-db emulates (Aurora global switchover/failover, the PostgreSQL `dr_canary` table).

They let the runbook tests run end to end on today's sandbox; they are deliberately minimal: the writer flag of the
global cluster's members in moto's state, and a canary table every region sees at once (replication without lag).
Everything else the runbooks call (S3 and its replication, CloudWatch gates, DynamoDB, SSM, Secrets Manager, STS) is
the sandbox's own. Replace them by sandbox-db's emulation when it lands.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from moto.backends import get_backend
from moto.core.botocore_stubber import MockRawResponse

from dr_runbooks.runbooks import steps
from dr_runbooks.runbooks.canary import DbEndpoint
from dr_runbooks.session import AwsSession

ACCOUNT = "123456789012"


def _make_writer(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
    body = params["body"]
    target = body["TargetDbClusterIdentifier"]
    for backend in get_backend("rds")[ACCOUNT].values():
        found = backend.global_clusters.get(body["GlobalClusterIdentifier"])
        if found is not None:
            for member in found.members:
                member.is_writer = member.db_cluster_arn == target
    return AWSResponse("", 200, {}, MockRawResponse(b"")), {"GlobalCluster": {}}


class CanaryTable:
    """`dr_canary` shared by both regions (a global database without lag)."""

    def __init__(self) -> None:
        self.rows: dict[str, datetime] = {}

    def write(self, endpoint: DbEndpoint, run_id: str, region: str) -> datetime:
        return self.rows.setdefault(run_id, datetime.now(UTC))

    def find(self, endpoint: DbEndpoint, run_id: str) -> datetime | None:
        return self.rows.get(run_id)

    def newest(self, endpoint: DbEndpoint) -> datetime | None:
        return max(self.rows.values(), default=None)


def install(patcher: pytest.MonkeyPatch) -> CanaryTable:
    """Every client drctl makes answers the Aurora global writer moves itself; the canary table is in memory."""
    new_client = AwsSession._new_client

    def client_with_aurora(self: AwsSession, service: str, region: str, probe: bool) -> Any:
        client = new_client(self, service, region, probe)
        if service == "rds":
            for operation in ("SwitchoverGlobalCluster", "FailoverGlobalCluster"):
                client.meta.events.register_first(f"before-call.rds.{operation}", _make_writer)
        return client

    patcher.setattr(AwsSession, "_new_client", client_with_aurora)
    table = CanaryTable()
    patcher.setattr(steps, "DB_CANARY", table)
    return table


@pytest.fixture
def aurora_stand_in(monkeypatch: pytest.MonkeyPatch) -> CanaryTable:
    return install(monkeypatch)
