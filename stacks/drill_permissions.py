"""The restore drill's permissions, for the role that runs it: the DR region's runbook function in AWS, and the
dr-operator role when an engineer runs the drill from a terminal (the same statements, one place)."""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_iam as iam

from dr_runbooks.topology import drill_scratch_prefix
from stacks.site import Site


def restore_drill_permissions(site: Site, key_arns: list[str], key_conditions: dict[str, Any] | None = None,
                              *, validates: bool = False) -> list[iam.PolicyStatement]:
    """What a restore drill in `site`'s region (the DR region) calls: restore the vault's recovery points into
    scratch resources named by the run and delete them again; list both chart buckets to compare them. `key_arns`
    (with `key_conditions`) is the region's data key as the policy can name it. `validates`: the caller also runs the
    validations (a drill run from a terminal), which log in to the restored cluster with a fresh master password and
    read restored charts; in AWS the database function does that, with its own permissions."""
    account, region, here = site.config.account, site.region, site.here
    scratch = drill_scratch_prefix(site.config.env_name)
    scratch_buckets = [f"arn:aws:s3:::{scratch}*", f"arn:aws:s3:::{scratch}*/*"]
    statements = [
        iam.PolicyStatement(sid="RecoveryPoints", actions=["backup:ListRecoveryPointsByBackupVault"],
                            resources=[site.vault_arn(region)]),
        iam.PolicyStatement(sid="RestoreJobs", actions=["backup:StartRestoreJob",
                                                        "backup:GetRecoveryPointRestoreMetadata"], resources=[
            f"arn:aws:backup:{region}:{account}:recovery-point:*",
            f"arn:aws:rds:{region}:{account}:cluster-snapshot:awsbackup:*"]),
        # DescribeRestoreJob has no resource-level permission.
        iam.PolicyStatement(sid="RestoreJobStatus", actions=["backup:DescribeRestoreJob"], resources=["*"]),
        iam.PolicyStatement(sid="PassBackupRole", actions=["iam:PassRole"], resources=[here.backup_role_arn],
                            conditions={"StringEquals": {"iam:PassedToService": "backup.amazonaws.com"}}),
        iam.PolicyStatement(sid="ScratchClusters", actions=[
            "rds:DescribeDBClusters", "rds:DeleteDBCluster", "rds:AddTagsToResource", "rds:ListTagsForResource"],
            resources=[f"arn:aws:rds:{region}:{account}:cluster:{scratch}*"]),
        # AWS Backup restores an Aurora cluster without instances: the drill adds one to read the restored data.
        iam.PolicyStatement(sid="ScratchInstances", actions=[
            "rds:CreateDBInstance", "rds:DeleteDBInstance", "rds:AddTagsToResource"],
            resources=[f"arn:aws:rds:{region}:{account}:db:{scratch}*",
                       f"arn:aws:rds:{region}:{account}:cluster:{scratch}*"]),
        # CreateDBInstance is also authorized against the groups it uses: the cluster's, whatever their names.
        iam.PolicyStatement(sid="ScratchInstanceGroups", actions=["rds:CreateDBInstance"], resources=[
            f"arn:aws:rds:{region}:{account}:{kind}:*" for kind in ("subgrp", "pg", "og")]),
        # The scratch instance is encrypted with the cluster's key (the DR data key), through RDS only.
        iam.PolicyStatement(sid="ScratchInstanceKey", actions=["kms:CreateGrant", "kms:DescribeKey"],
                            resources=key_arns, conditions={**(key_conditions or {}), "StringEquals": {
                                "kms:ViaService": f"rds.{region}.amazonaws.com"}}),
        # Finding an interrupted drill's leftovers lists every cluster, instance and bucket (by name prefix and tag).
        iam.PolicyStatement(sid="FindLeftovers", actions=["rds:DescribeDBClusters", "s3:ListAllMyBuckets"],
                            resources=["*"]),
        iam.PolicyStatement(sid="FindInstances", actions=["rds:DescribeDBInstances"],
                            resources=[f"arn:aws:rds:{region}:{account}:db:*"]),
        iam.PolicyStatement(sid="ScratchBuckets", actions=[
            "s3:ListBucket", "s3:ListBucketVersions", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:DeleteBucket",
            "s3:PutBucketTagging", "s3:GetBucketTagging"], resources=scratch_buckets),
        iam.PolicyStatement(sid="CompareArchives", actions=["s3:ListBucket", "s3:ListBucketVersions"], resources=[
            site.bucket_arn(site.topology.in_region(r).chart_bucket) for r in site.config.regions]),
    ]
    if validates:
        statements += [
            scratch_master_password(site),
            iam.PolicyStatement(sid="ReadRestoredCharts", actions=["s3:GetObject"],
                                resources=[f"arn:aws:s3:::{scratch}*/*"]),
        ]
    return statements


def scratch_master_password(site: Site) -> iam.PolicyStatement:
    """The validations log in to the restored cluster with a fresh master password they set (it keeps the
    since-rotated one of backup time): whoever runs them (the database function in AWS) needs this."""
    return iam.PolicyStatement(sid="ScratchMasterPassword", actions=["rds:ModifyDBCluster"], resources=[
        f"arn:aws:rds:{site.region}:{site.config.account}:cluster:{drill_scratch_prefix(site.config.env_name)}*"])
