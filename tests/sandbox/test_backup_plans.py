"""The sandbox runs the deployed backup plans on their schedule, fast: recovery points appear in the writer's vault and
their copies in the partner's without anyone calling StartBackupJob, as they would on AWS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dr_runbooks.observe import probes
from ehr_dr_sandbox.api import Sandbox
from ehr_dr_sandbox.backup_plans import fires_in_hour
from ehr_dr_sandbox.faults import FaultsClient

REPO = Path(__file__).resolve().parents[2]
#: One hour of the plans' clock per second: the hourly rule fires every second.
HOUR_SECONDS = 1.0


@pytest.fixture(scope="module")
def scheduled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox.start(tmp_path_factory.mktemp("sandbox"), cdk_json=REPO / "cdk.json", heartbeat_seconds=None,
                       backup_plan_seconds=HOUR_SECONDS) as started:
        yield started


def recovery_points(sandbox: Sandbox, region: str) -> list[dict[str, Any]]:
    pages = sandbox.client("backup", region).get_paginator("list_recovery_points_by_backup_vault").paginate(
        BackupVaultName=sandbox.topology.in_region(region).backup_vault)
    return [point for page in pages for point in page["RecoveryPoints"]]


def writer(sandbox: Sandbox) -> str:
    found = probes.global_cluster(sandbox.client("rds", "us-west-1"), sandbox.topology.global_cluster_id).writer()
    assert found is not None
    return found.region


def test_recovery_points_appear_in_both_vaults_on_the_plans_schedule(scheduled: Sandbox) -> None:
    topology = scheduled.topology
    source = writer(scheduled)
    partner = topology.partner(source)
    vault = topology.in_region(source).backup_vault
    deadline = time.monotonic() + 60
    while not (copies := [point for point in recovery_points(scheduled, partner)
                          if point["Status"] == "COMPLETED"
                          and point.get("SourceBackupVaultArn", "").endswith(f":backup-vault:{vault}")]) \
            or {point["ResourceType"] for point in copies} != {"Aurora", "S3"}:
        assert time.monotonic() < deadline, f"no scheduled copies in {partner}: {scheduled.status()['backup_plans']}"
        time.sleep(0.2)
    originals = {point["ResourceArn"] for point in recovery_points(scheduled, source) if point["Status"] == "COMPLETED"}
    assert originals == {point["ResourceArn"] for point in copies} == {
        f"arn:aws:rds:{source}:{topology.account}:cluster:{topology.in_region(source).db_cluster_id}",
        f"arn:aws:s3:::{topology.in_region(source).chart_bucket}"}
    assert "hourly" in scheduled.status()["backup_plans"]["last"]["rules"]


def test_the_plans_record_their_last_execution(scheduled: Sandbox) -> None:
    scheduled.action("backup-plan-now")
    backup = scheduled.client("backup", writer(scheduled))
    (plan,) = backup.list_backup_plans()["BackupPlansList"]
    assert "LastExecutionDate" in backup.get_backup_plan(BackupPlanId=plan["BackupPlanId"])


def test_a_dark_writer_region_backs_nothing_up(scheduled: Sandbox) -> None:
    faults = FaultsClient(scheduled.endpoint_url)
    dark = writer(scheduled)
    faults.region_down(dark)
    try:
        played = scheduled.action("backup-plan-now")
    finally:
        faults.clear()
    assert played["skipped"] == f"the writer's region {dark} is dark"


@pytest.mark.parametrize(("expression", "hours"), [
    ("cron(0 * * * ? *)", set(range(24))),
    ("cron(0 5 * * ? *)", {5}),
    ("cron(0 3,15 * * ? *)", {3, 15}),
    ("cron(0 */6 * * ? *)", {0, 6, 12, 18}),
    ("cron(0 8-10 * * ? *)", {8, 9, 10}),
    ("rate(1 hour)", set()),
])
def test_a_rule_fires_in_the_hours_its_cron_names(expression: str, hours: set[int]) -> None:
    assert {hour for hour in range(24) if fires_in_hour(expression, hour)} == hours
