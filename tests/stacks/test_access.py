"""Human roles: named by the topology, assumable only with a recent MFA session, with short sessions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from stack_assembly import Estate

from dr_runbooks.topology import ACCESS_ROLES, TRAFFIC_GATE_NAMESPACE
from stacks.access import MFA_MAX_AGE_SECONDS


def _role(estate: Estate, role: str) -> dict[str, Any]:
    arn = estate.topology.role_arns[role]
    for resource in estate.resources("access", estate.config.primary_region, "AWS::IAM::Role").values():
        if arn.endswith(f"/{resource['Properties']['RoleName']}"):
            return resource["Properties"]
    raise AssertionError(f"no role {arn}")


@pytest.mark.parametrize("role", ACCESS_ROLES)
def test_role_trust_requires_mfa_present_and_recent(estate: Estate, role: str) -> None:
    (statement,) = _role(estate, role)["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Condition"]["Bool"] == {"aws:MultiFactorAuthPresent": "true"}
    assert statement["Condition"]["NumericLessThan"] == {"aws:MultiFactorAuthAge": MFA_MAX_AGE_SECONDS}


@pytest.mark.parametrize("role", ACCESS_ROLES)
def test_role_sessions_are_bounded(estate: Estate, role: str) -> None:
    assert _role(estate, role)["MaxSessionDuration"] <= 4 * 3600


def test_auditor_cannot_write(estate: Estate) -> None:
    policies = str(_role(estate, "auditor")["ManagedPolicyArns"])
    assert "SecurityAudit" in policies and "Administrator" not in policies


def _operator_statements(estate: Estate) -> dict[str, dict[str, Any]]:
    """The operator's statements by Sid, across the parts its policy is split into (IAM's size quota)."""
    policies = estate.resources("access", estate.config.primary_region, "AWS::IAM::ManagedPolicy").values()
    return {statement["Sid"]: statement for policy in policies
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]}


def test_dr_operator_puts_metrics_only_into_the_traffic_gate_namespace(estate: Estate) -> None:
    statements = _operator_statements(estate)
    assert statements["GateTraffic"]["Condition"] == {"StringEquals": {"cloudwatch:namespace": TRAFFIC_GATE_NAMESPACE}}
    puts = [sid for sid, statement in statements.items() if "cloudwatch:PutMetricData" in statement["Action"]]
    assert puts == ["GateTraffic"]


def test_dr_operator_reads_only_the_estates_alarms(estate: Estate) -> None:
    statement = _operator_statements(estate)["ObserveAlarms"]
    assert statement["Resource"] == [f"arn:aws:cloudwatch:{region}:{estate.config.account}:alarm:ehr-dr-demo-*"
                                     for region in estate.regions]


def test_dr_operator_uses_data_keys_only_through_the_data_services(estate: Estate) -> None:
    condition = _operator_statements(estate)["UseDataKeysThroughServices"]["Condition"]
    assert condition["ForAnyValue:StringEquals"]["kms:ResourceAliases"] == ["alias/ehr-dr-demo-data"]
    assert set(condition["StringLike"]["kms:ViaService"]) == {
        "s3.*.amazonaws.com", "dynamodb.*.amazonaws.com", "secretsmanager.*.amazonaws.com",
    }


def _kept_snapshot_arns(estate: Estate) -> list[str]:
    return [arn for region in estate.regions for arn in (
        f"arn:aws:rds:{region}:{estate.config.account}:cluster-snapshot:rds:unplanned-global-failover-"
        f"{estate.topology.in_region(region).db_cluster_id}-*",
        f"arn:aws:rds:{region}:{estate.config.account}:cluster-snapshot:ehr-dr-{estate.config.env_name}-lost-writes-*",
    )]


def test_dr_operator_copies_only_the_estates_failover_snapshots_to_its_kept_snapshots(estate: Estate) -> None:
    statements = _operator_statements(estate)
    keep = statements["KeepFailoverSnapshots"]
    assert sorted(keep["Action"]) == ["rds:AddTagsToResource", "rds:CopyDBClusterSnapshot",
                                      "rds:DescribeDBClusterSnapshots"]
    assert keep["Resource"] == _kept_snapshot_arns(estate)
    assert statements["FindFailoverSnapshots"]["Action"] == "rds:DescribeDBClusterSnapshots"


def test_dr_operator_encrypts_kept_snapshots_with_the_data_keys_through_rds_only(estate: Estate) -> None:
    statement = _operator_statements(estate)["EncryptKeptSnapshots"]
    assert sorted(statement["Action"]) == ["kms:CreateGrant", "kms:DescribeKey"]
    assert statement["Condition"] == {"ForAnyValue:StringEquals": {"kms:ResourceAliases": ["alias/ehr-dr-demo-data"]},
                                      "StringLike": {"kms:ViaService": "rds.*.amazonaws.com"}}


def test_dr_operator_backs_up_and_copies_where_aws_backup_authorizes_it(estate: Estate) -> None:
    """drctl backup: StartBackupJob on the vault, StartCopyJob on the recovery point, the jobs followed on `*`, the
    backup role passed to AWS Backup only (Service Authorization Reference, AWS Backup)."""
    statements = _operator_statements(estate)
    account, regions = estate.config.account, sorted(estate.topology.regions)

    def allowed(action: str) -> set[str]:
        return {resource for statement in statements.values() if action in statement["Action"]
                for resource in ([statement["Resource"]] if isinstance(statement["Resource"], str)
                                 else statement["Resource"])}

    assert allowed("backup:StartBackupJob") == {
        f"arn:aws:backup:{region}:{account}:backup-vault:{estate.topology.in_region(region).backup_vault}"
        for region in regions}
    assert {f"arn:aws:backup:{region}:{account}:recovery-point:*" for region in regions} <= allowed(
        "backup:StartCopyJob")
    assert allowed("backup:DescribeBackupJob") == allowed("backup:DescribeCopyJob") == {"*"}
    pass_role = statements["PassTheBackupRoleToBackupOnly"]
    assert set(pass_role["Resource"]) == {estate.topology.in_region(region).backup_role_arn for region in regions}
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "backup.amazonaws.com"}}


def test_dr_operator_changes_the_lock_of_chart_versions_and_deletes_them_under_charts_only(estate: Estate) -> None:
    statement = _operator_statements(estate)["RecordsLifecycle"]
    assert set(statement["Action"]) == {"s3:GetObjectRetention", "s3:GetObjectLegalHold", "s3:PutObjectRetention",
                                        "s3:PutObjectLegalHold", "s3:DeleteObjectVersion"}
    resources = [json.dumps(resource) for resource in statement["Resource"]]
    assert len(resources) == 2 and all("/charts/*" in resource for resource in resources)


def test_dr_operator_creates_only_retention_batch_jobs_and_passes_them_only_the_retention_batch_role(
        estate: Estate) -> None:
    statements = _operator_statements(estate)
    create = statements["RetentionBatchJobs"]
    assert (create["Action"], create["Condition"]) == (
        "s3:CreateJob", {"StringEquals": {"s3:RequestJobOperation": "S3PutObjectRetention"}})
    passing = statements["PassTheRetentionBatchRoleToBatchOperationsOnly"]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "batchoperations.s3.amazonaws.com"}}
    assert sorted(passing["Resource"]) == sorted(r.retention_batch_role_arn for r in estate.topology.regions.values())
