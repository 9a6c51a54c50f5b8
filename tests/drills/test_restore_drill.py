"""The restore drill on a sandbox: passes on good backups, fails with the reason on missing or corrupted ones,
reports the RPO of an old recovery point, and cleans up after an interrupted run; restores into the live DR
cluster's network, hand back at an invocation deadline without starting a second job, and resume after a kill;
adds the one DB instance AWS Backup does not restore (nothing answers on the scratch cluster without it) and deletes
it before its cluster.
Tests run in file order: the first one needs the DR vault still empty."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pg8000.dbapi
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner
from moto.backends import get_backend

from dr_runbooks.cli import cli
from dr_runbooks.drills import restore, running, scratch
from dr_runbooks.drills.backups import DONE, take_backups
from dr_runbooks.drills.plans import restore_drill as restore_plan
from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.journal import Journal, StepRecord
from dr_runbooks.engine.runner import run_step
from dr_runbooks.evidence.record import EvidenceRecord
from dr_runbooks.evidence.report import build_report, render_markdown
from dr_runbooks.runbooks import driver
from dr_runbooks.runbooks.canary import DbEndpoint, PostgresCanary, connect, db_endpoint
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import RECORDS_DB_INSTANCE_CLASS
from ehr_dr_sandbox.api import Sandbox

from .conftest import restore_drill, scratch_left


def test_a_drill_without_a_backup_in_the_dr_vault_fails_saying_the_backup_is_missing(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    vault = seeded.topology.in_region(seeded.topology.dr_region).backup_vault
    assert not aws.client("backup", seeded.topology.dr_region).list_recovery_points_by_backup_vault(
        BackupVaultName=vault)["RecoveryPoints"], "precondition: no backup taken yet in this module"
    run, record = restore_drill(seeded, aws, tmp_path)
    assert run.status == "failed" and not record.passed
    assert "backup missing: no completed recovery point" in record.errors[0].message
    assert vault in record.errors[0].message


def test_a_drill_of_good_backups_restores_validates_and_tears_down(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    take_backups(aws, seeded.topology)
    run, record = restore_drill(seeded, aws, tmp_path)
    assert run.status == "succeeded", run.error
    assert record.passed and record.kind == "restore-drill" and record.hipaa == ("A", "D", "E")
    records, charts, torn = record.verifications[:3]
    assert records.result == charts.result == torn.result == "passed"
    assert charts.checked == 40 and records.mismatched == 0
    assert record.rto is not None and record.rto.measured_seconds is not None
    assert scratch_left(seeded, aws) == []


def test_drctl_drill_restore_exits_0_and_prints_the_sealed_record(
        seeded: Sandbox, sandbox_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["drill", "restore", "--sample", "3", "--output", "json"], env=sandbox_env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    record = EvidenceRecord.model_validate_json(result.stdout)
    assert record.kind == "restore-drill" and record.record_hash and record.verifications[1].checked == 3
    assert list((tmp_path / ".ehr-dr" / "evidence" / seeded.topology.env_name).glob("*.json"))
    dr = seeded.topology.in_region(seeded.topology.dr_region)
    kept = seeded.client("s3", dr.region).list_objects_v2(Bucket=dr.evidence_bucket)["Contents"]
    assert any(record.run_id in item["Key"] for item in kept), "sealed in the DR region's Object Lock bucket"


def test_a_sample_checks_only_that_many_chart_files(seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    _, record = restore_drill(seeded, aws, tmp_path, sample=5)
    charts = record.verifications[1]
    assert charts.checked == 5 and "random sample" in charts.how


def test_a_chart_file_changed_after_its_checksum_was_stored_fails_the_drill_naming_it(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    primary = seeded.topology.primary_region
    bucket = seeded.topology.in_region(primary).chart_bucket
    s3 = seeded.client("s3", primary)
    key = s3.list_objects_v2(Bucket=bucket, Prefix="charts/")["Contents"][0]["Key"]
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=original + b"tampered", ChecksumAlgorithm="SHA256")
    try:
        take_backups(aws, seeded.topology)
        run, record = restore_drill(seeded, aws, tmp_path)
    finally:
        s3.put_object(Bucket=bucket, Key=key, Body=original, ChecksumAlgorithm="SHA256")
        take_backups(aws, seeded.topology)
    assert run.status == "failed" and not record.passed
    assert "do not match the SHA-256 their scan row stores (corrupted)" in (run.error or "")
    assert key in (run.error or "")
    assert record.verifications[1].result == "failed" and record.verifications[1].mismatched == 1
    assert scratch_left(seeded, aws) == [], "validation failed, teardown still ran"
    report = render_markdown(build_report([record], [record], [], 0.9995, datetime.now(UTC)))
    assert "(corrupted)" in report and key in report


def test_a_restore_from_before_the_latest_canary_reports_the_rpo(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    topology = seeded.topology
    backed_up = take_backups(aws, topology)
    primary, dr = topology.primary_region, topology.dr_region

    def endpoint(region: str, reader: bool = False):
        return db_endpoint(aws.client("rds", region), aws.client("secretsmanager", region),
                           topology.in_region(region).db_cluster_id, topology.db_secret_name,
                           topology.database_name, reader=reader)

    PostgresCanary().write(endpoint(primary), "rpo-test-canary", primary)
    take_backups(aws, topology)  # a newer backup exists: the drill is asked for the older one
    assert PostgresCanary().find(endpoint(dr, reader=True), "rpo-test-canary") is not None
    run, record = restore_drill(seeded, aws, tmp_path, recovery_points=[backed_up.database, backed_up.archive])
    assert run.status == "succeeded", run.error
    assert record.rpo is not None and record.rpo.measured_seconds and record.rpo.measured_seconds > 0
    assert any("older than the newest canary" in error.message for error in record.errors)


def test_a_named_recovery_point_that_does_not_exist_fails_as_missing(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    run, record = restore_drill(seeded, aws, tmp_path, recovery_points=["arn:aws:backup:us-west-1:1:recovery-point:x"])
    assert not record.passed
    assert run.status == "failed" and "backup missing: the named recovery point" in (run.error or "")


def test_an_interrupted_teardown_is_cleaned_up_by_the_next_drill(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def killed(ctx: object) -> None:
        raise RuntimeError("process killed before teardown")

    with monkeypatch.context() as patch:
        patch.setattr(restore, "teardown", killed)  # the plan's teardown and the teardown-always retry both die
        first, _ = restore_drill(seeded, aws, tmp_path / "first")
    left = scratch_left(seeded, aws)
    assert first.status == "failed" and len(left) == 2
    cluster = scratch.scratch_clusters(aws.client("rds", seeded.topology.dr_region), seeded.topology.env_name)[0]
    instances = [instance["DBInstanceIdentifier"] for instance in
                 scratch.cluster_instances(aws.client("rds", seeded.topology.dr_region), cluster)]
    assert len(instances) == 1, "the killed drill left its scratch cluster with its instance"
    run, record = restore_drill(seeded, aws, tmp_path / "next")
    assert run.status == "succeeded", run.error
    assert sorted(run.steps["clean-leftovers"].outputs["removed"]) == sorted(left + instances)
    assert not aws.client("rds", seeded.topology.dr_region).describe_db_instances(
        Filters=[{"Name": "db-cluster-id", "Values": [cluster]}])["DBInstances"]
    assert any(check.what.startswith("leftovers of an interrupted drill") for check in record.verifications)
    assert scratch_left(seeded, aws) == []


#: Every changing command runs as the on-call engineer does: the dr-operator role, assumed with MFA.
MFA = ["--mfa-serial", "arn:aws:iam::123456789012:mfa/oncall", "--mfa-code", "123456", "--assume-operator"]


class Killed(BaseException):
    """Plays the process being killed: not an Exception, so nothing in the engine handles it."""


def _ready_to_restore(sandbox: Sandbox, aws: AwsSession, tmp_path: Path) -> RunContext:
    """A drill run journaled up to its restores (leftovers cleaned, recovery points picked), as a task would find it."""
    ctx = running.new_restore_context(aws, sandbox.topology, {"sample": None}, "tester", tmp_path / "runs")
    ctx.journal.start(ctx.run)
    for name in ("clean-leftovers", "pick-recovery-points"):
        assert run_step(ctx, restore_plan().step(name)).status == "succeeded"
    return ctx


def _tear_down(ctx: RunContext) -> None:
    assert run_step(ctx, restore_plan().step("teardown")).status == "succeeded"


def _starts(record: StepRecord) -> int:
    return [call.operation for call in record.calls].count("StartRestoreJob")


@pytest.fixture
def live_dr_network(seeded: Sandbox) -> Iterator[tuple[str, str]]:
    """The live DR cluster in a DB subnet group and a security group of a records VPC, as the stacks deploy it
    (the sandbox provisions it without; neither AWS nor moto moves a cluster into a subnet group afterwards)."""
    region = seeded.topology.dr_region
    ec2, rds = seeded.client("ec2", region), seeded.client("rds", region)
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{index}.0/24", AvailabilityZone=f"{region}{zone}")[
        "Subnet"]["SubnetId"] for index, zone in enumerate("ab")]
    group = ec2.create_security_group(GroupName="records-db", Description="records database", VpcId=vpc)["GroupId"]
    rds.create_db_subnet_group(DBSubnetGroupName="records-dr", DBSubnetGroupDescription="records", SubnetIds=subnets)
    live = get_backend("rds")[seeded.config.account][region].clusters[seeded.topology.in_region(region).db_cluster_id]
    before = live.db_subnet_group_name, live.vpc_security_group_ids
    live.db_subnet_group_name, live.vpc_security_group_ids = "records-dr", [group]
    yield "records-dr", group
    live.db_subnet_group_name, live.vpc_security_group_ids = before


def test_the_scratch_cluster_goes_into_the_live_dr_clusters_subnet_group_and_security_groups(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path, live_dr_network: tuple[str, str]) -> None:
    subnet_group, security_group = live_dr_network
    ctx = _ready_to_restore(seeded, aws, tmp_path)
    try:
        record = run_step(ctx, restore_plan().step("restore-database"))
        assert record.status == "succeeded", record.error
        restored = ctx.client("rds").describe_db_clusters(DBClusterIdentifier=record.outputs["cluster_id"])[
            "DBClusters"][0]
    finally:
        _tear_down(ctx)
    assert restored["DBSubnetGroup"] == subnet_group
    assert [group["VpcSecurityGroupId"] for group in restored["VpcSecurityGroups"]] == [security_group]


def test_a_restore_into_a_subnet_group_that_does_not_exist_fails_naming_it_and_creates_nothing(
        seeded: Sandbox, aws: AwsSession) -> None:
    region = seeded.topology.dr_region
    backup = aws.client("backup", region)
    point = backup.list_recovery_points_by_backup_vault(
        BackupVaultName=seeded.topology.in_region(region).backup_vault, ByResourceType="Aurora")["RecoveryPoints"][0]
    job = backup.start_restore_job(
        RecoveryPointArn=point["RecoveryPointArn"], IamRoleArn=seeded.topology.in_region(region).backup_role_arn,
        ResourceType="Aurora", Metadata={"DBClusterIdentifier": "no-such-network", "Engine": "aurora-postgresql",
                                         "DBSubnetGroupName": "nowhere", "VpcSecurityGroupIds": "[]"})["RestoreJobId"]
    deadline = time.time() + 30
    while (found := backup.describe_restore_job(RestoreJobId=job))["Status"] not in DONE and time.time() < deadline:
        time.sleep(0.1)
    assert found["Status"] == "FAILED" and "DB subnet group nowhere not found" in found["StatusMessage"]
    assert "no-such-network" not in [cluster["DBClusterIdentifier"] for cluster in
                                     aws.client("rds", region).describe_db_clusters()["DBClusters"]]


def test_a_restore_step_handed_back_at_the_invocation_deadline_is_completed_by_its_next_invocation_with_one_job(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    ctx = _ready_to_restore(seeded, aws, tmp_path)
    step = restore_plan().step("restore-database")
    try:
        first = run_step(dataclasses.replace(ctx, invocation_deadline=time.time()), step)
        assert first.status == "waiting" and first.resume_after_seconds == 15, first.error
        next_invocation = driver.resume_context(aws, seeded.topology, ctx.run.run_id, tmp_path / "next")
        second = run_step(next_invocation, step)
    finally:
        _tear_down(ctx)
    assert second.status == "succeeded", second.error
    assert second.outputs["job"] == first.progress["job"]
    assert _starts(second) == 1, "the journal keeps the first invocation's calls, and no second job was started"


def test_drctl_resume_finishes_a_restore_drill_killed_mid_restore_and_tears_down(
        seeded: Sandbox, aws: AwsSession, sandbox_env: dict[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ctx = running.new_restore_context(aws, seeded.topology, {"sample": 3}, "tester")

    both_waiting = threading.Barrier(2, timeout=30)

    def killed(*args: object, **kwargs: object) -> None:
        both_waiting.wait()  # the kill comes once both restore jobs were started (and checkpointed)
        raise Killed("the laptop lid closed while the restore jobs ran")

    with monkeypatch.context() as patch:
        patch.setattr(restore, "wait_until", killed)
        with pytest.raises(Killed):
            running.run_restore_drill(ctx)
    journal = Journal(aws, ctx.run.target_region, ctx.target.runbook_table, tmp_path / "peek")
    killed_run = journal.load(ctx.run.run_id)
    jobs = {name: killed_run.steps[name].progress["job"] for name in ("restore-database", "restore-archive")}
    assert {killed_run.steps[name].status for name in jobs} == {"running"}

    result = CliRunner().invoke(cli, ["resume", ctx.run.run_id, "--output", "json", *MFA], env=sandbox_env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "succeeded"
    resumed = journal.load(ctx.run.run_id)
    assert {name: resumed.steps[name].outputs["job"] for name in jobs} == jobs
    assert all(_starts(resumed.steps[name]) == 0 for name in jobs), "polled the killed run's jobs, started none"
    assert scratch_left(seeded, aws) == []
    assert list((tmp_path / ".ehr-dr" / "evidence" / seeded.topology.env_name).glob("*.json"))


def test_drctl_resume_refuses_a_run_of_a_runbook_it_cannot_resume_and_changes_nothing(
        seeded: Sandbox, aws: AwsSession, sandbox_env: dict[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ctx = running.new_restore_context(aws, seeded.topology, {}, "tester")
    run = ctx.run.model_copy(update={"run_id": ctx.run.run_id.replace("-restore-", "-mystery-"), "runbook": "mystery"})
    ctx.journal.start(run)
    result = CliRunner().invoke(cli, ["resume", run.run_id, *MFA], env=sandbox_env, catch_exceptions=False)
    assert result.exit_code == 2
    assert f"refused: run {run.run_id} is a mystery run; drctl resume resumes" in result.stderr
    assert ctx.journal.load(run.run_id).status == "running" and not ctx.journal.load(run.run_id).steps


def _restored(sandbox: Sandbox, aws: AwsSession, tmp_path: Path) -> RunContext:
    """A drill run journaled up to its database restore: the scratch cluster exists, with no instance."""
    ctx = _ready_to_restore(sandbox, aws, tmp_path)
    assert run_step(ctx, restore_plan().step("restore-database")).status == "succeeded"
    return ctx


def _creates(record: StepRecord) -> int:
    return [call.operation for call in record.calls].count("CreateDBInstance")


def test_a_drill_adds_exactly_one_db_instance_to_its_scratch_cluster_and_validates_after_it_is_available(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    run, _ = restore_drill(seeded, aws, tmp_path)
    assert run.status == "succeeded", run.error
    added, cluster = run.steps["add-instance"], run.steps["restore-database"].outputs["cluster_id"]
    assert sum(_creates(step) for step in run.steps.values()) == 1
    assert added.outputs["instance_id"] == f"{cluster}-1"
    assert added.outputs["instance_class"] == RECORDS_DB_INSTANCE_CLASS, "the live DR cluster is headless here"
    assert min(run.steps[name].started_at for name in ("validate-records", "validate-charts")) >= added.ended_at


def test_the_scratch_instance_takes_the_instance_class_of_the_live_dr_clusters_instance(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    rds = aws.client("rds", seeded.topology.dr_region)
    live = seeded.topology.in_region(seeded.topology.dr_region).db_cluster_id
    rds.create_db_instance(DBInstanceIdentifier=f"{live}-reader", DBClusterIdentifier=live,
                           Engine="aurora-postgresql", DBInstanceClass="db.r7g.xlarge")
    ctx = _restored(seeded, aws, tmp_path)
    try:
        record = run_step(ctx, restore_plan().step("add-instance"))
    finally:
        _tear_down(ctx)
        rds.delete_db_instance(DBInstanceIdentifier=f"{live}-reader", SkipFinalSnapshot=True)
    assert record.status == "succeeded", record.error
    assert record.outputs["instance_class"] == "db.r7g.xlarge"


def test_an_add_instance_step_handed_back_while_the_instance_is_creating_ends_with_one_instance(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    ctx = _restored(seeded, aws, tmp_path)
    step = restore_plan().step("add-instance")
    cluster = ctx.output("restore-database")["cluster_id"]
    try:
        first = run_step(dataclasses.replace(ctx, invocation_deadline=time.time()), step)
        assert first.status == "waiting", first.error
        next_invocation = driver.resume_context(aws, seeded.topology, ctx.run.run_id, tmp_path / "next")
        second = run_step(next_invocation, step)
        instances = scratch.cluster_instances(ctx.client("rds"), cluster)
    finally:
        _tear_down(ctx)
    assert second.status == "succeeded", second.error
    assert _creates(second) == 1, "the journal keeps the first invocation's call, and no second create was made"
    assert [(found["DBInstanceIdentifier"], found["DBInstanceStatus"]) for found in instances] == [
        (second.outputs["instance_id"], "available")]


def test_teardown_deletes_the_scratch_instance_then_its_cluster(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    ctx = _restored(seeded, aws, tmp_path)
    assert run_step(ctx, restore_plan().step("add-instance")).status == "succeeded"
    cluster = ctx.output("restore-database")["cluster_id"]
    torn = run_step(ctx, restore_plan().step("teardown"))
    assert torn.status == "succeeded", torn.error
    deletes = [call.operation for call in torn.calls if call.operation.startswith("DeleteDB")]
    assert deletes == ["DeleteDBInstance", "DeleteDBCluster"]
    assert torn.outputs["removed"][:2] == [f"{cluster}-1", cluster]
    assert not scratch.cluster_instances(ctx.client("rds"), cluster)
    assert cluster not in scratch.scratch_clusters(ctx.client("rds"), seeded.topology.env_name)


def test_the_sandbox_refuses_to_delete_a_scratch_cluster_that_still_has_an_instance_as_aws_does(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    ctx = _restored(seeded, aws, tmp_path)
    cluster = ctx.output("restore-database")["cluster_id"]
    try:
        assert run_step(ctx, restore_plan().step("add-instance")).status == "succeeded"
        with pytest.raises(ClientError) as refused:
            ctx.client("rds").delete_db_cluster(DBClusterIdentifier=cluster, SkipFinalSnapshot=True)
        still = scratch.scratch_clusters(ctx.client("rds"), seeded.topology.env_name, ctx.run.run_id)
    finally:
        _tear_down(ctx)
    assert refused.value.response["Error"]["Code"] == "InvalidDBClusterStateFault"
    assert still == [cluster]


def test_a_restored_cluster_accepts_connections_only_once_its_instance_is_available(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    ctx = _restored(seeded, aws, tmp_path)
    rds, cluster = ctx.client("rds"), ctx.output("restore-database")["cluster_id"]
    rds.modify_db_cluster(DBClusterIdentifier=cluster, MasterUserPassword="a-new-one", ApplyImmediately=True)
    found = rds.describe_db_clusters(DBClusterIdentifier=cluster)["DBClusters"][0]
    endpoint = DbEndpoint(host=found["Endpoint"], port=found["Port"], database=found["DatabaseName"],
                          username=found["MasterUsername"], password="a-new-one")
    try:
        with pytest.raises(pg8000.dbapi.DatabaseError, match="not currently accepting connections"):
            connect(endpoint).close()
        added = run_step(ctx, restore_plan().step("add-instance"))
        assert added.status == "succeeded", added.error
        with connect(endpoint) as connection:
            scans = connection.execute("SELECT count(*) FROM scans").fetchone()
    finally:
        _tear_down(ctx)
    assert scans is not None and scans[0] > 0


def test_a_restored_cluster_refuses_the_live_secrets_login_as_a_separate_cluster_would(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    ctx = _restored(seeded, aws, tmp_path)
    rds, cluster = ctx.client("rds"), ctx.output("restore-database")["cluster_id"]
    try:
        assert run_step(ctx, restore_plan().step("add-instance")).status == "succeeded"
        database = rds.describe_db_clusters(DBClusterIdentifier=cluster)["DBClusters"][0]["DatabaseName"]
        live_login = db_endpoint(rds, ctx.client("secretsmanager"), cluster, seeded.topology.db_secret_name, database)
        with pytest.raises(pg8000.dbapi.DatabaseError, match=r"pg_hba\.conf rejects connection"):
            connect(live_login).close()
    finally:
        _tear_down(ctx)


def test_validating_a_scratch_cluster_without_an_instance_fails_saying_nothing_answers_on_it(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    ctx = _restored(seeded, aws, tmp_path)
    try:
        record = run_step(ctx, restore_plan().step("validate-records"))
    finally:
        _tear_down(ctx)
    cluster = ctx.output("restore-database")["cluster_id"]
    assert record.status == "failed"
    assert record.error == (f"RuntimeError: scratch cluster {cluster} has no available DB instance, so nothing "
                            "answers on its endpoint (AWS Backup restores a cluster without one; step add-instance "
                            "adds it)")


def test_a_drill_after_the_database_secret_rotated_logs_in_with_a_fresh_password_and_leaves_the_secret_alone(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    take_backups(aws, seeded.topology)  # the recovery point keeps the password of now
    secrets = {region: aws.client("secretsmanager", region) for region in seeded.topology.regions}
    for client in secrets.values():  # the 30-day rotation, after the backup
        current = json.loads(client.get_secret_value(SecretId=seeded.topology.db_secret_name)["SecretString"])
        client.put_secret_value(SecretId=seeded.topology.db_secret_name,
                                SecretString=json.dumps({**current, "password": f"rotated-{uuid.uuid4().hex}"}))
    before = {region: client.get_secret_value(SecretId=seeded.topology.db_secret_name)["VersionId"]
              for region, client in secrets.items()}

    run, record = restore_drill(seeded, aws, tmp_path)

    assert run.status == "succeeded", run.error
    assert record.verifications[0].result == "passed"
    assert {region: client.get_secret_value(SecretId=seeded.topology.db_secret_name)["VersionId"]
            for region, client in secrets.items()} == before
    modified = [call.params for step in run.steps.values() for call in step.calls
                if call.operation == "ModifyDBCluster"]
    assert modified and all(params["MasterUserPassword"] == "<redacted>" for params in modified)
