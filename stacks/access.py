"""The human roles of the estate (IAM is global: one stack, deployed with the primary region).

Every role is assumable only by principals of this account holding an MFA session younger than an hour
(`aws:MultiFactorAuthPresent` and `aws:MultiFactorAuthAge`), and its sessions are short. The auditor reads; the DR
operator can do what the runbooks do and nothing else; platform admin and break-glass administer (break-glass use
raises the break-glass alarm, in the audit stack).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from dr_runbooks.orchestration.catalog import deployed_in
from dr_runbooks.topology import (
    TRAFFIC_GATE_NAMESPACE,
    AccessRole,
    parameter_name,
    role_name,
    state_machine_arn,
)
from stacks.drill_permissions import restore_drill_permissions
from stacks.managed_policies import managed_policies
from stacks.site import Site

MFA_MAX_AGE_SECONDS = 3600
SESSION_HOURS: dict[AccessRole, int] = {"platform-admin": 1, "dr-operator": 4, "auditor": 4, "break-glass": 1}


def mfa_conditions() -> dict[str, dict[str, object]]:
    return {
        "Bool": {"aws:MultiFactorAuthPresent": "true"},
        "NumericLessThan": {"aws:MultiFactorAuthAge": MFA_MAX_AGE_SECONDS},
    }


class AccessStack(cdk.Stack):
    def __init__(self, scope: Construct, site: Site) -> None:
        super().__init__(scope, site.stack_name("access"), env=site.env, description=f"{site.prefix} human roles")
        administrator = iam.ManagedPolicy.from_aws_managed_policy_name("AdministratorAccess")
        policies: dict[AccessRole, list[iam.IManagedPolicy]] = {
            "platform-admin": [administrator],
            "break-glass": [administrator],
            "auditor": [iam.ManagedPolicy.from_aws_managed_policy_name("SecurityAudit")],
            "dr-operator": _dr_operator_policies(self, site),
        }
        self.roles = {
            role: iam.Role(
                self,
                "".join(part.capitalize() for part in role.split("-")),
                role_name=role_name(site.config, role),
                assumed_by=iam.AccountPrincipal(site.config.account).with_conditions(mfa_conditions()),
                max_session_duration=cdk.Duration.hours(SESSION_HOURS[role]),
                managed_policies=managed,
            )
            for role, managed in policies.items()
        }


def _dr_operator_policies(scope: Construct, site: Site) -> list[iam.ManagedPolicy]:
    """What the runbooks call, on the estate's own resources only."""
    account = site.config.account
    topology = site.topology
    regions = topology.regions.values()
    dr = Site(site.config, topology, site.config.dr_region)
    return managed_policies(
        scope,
        "DrOperatorPolicy",
        [
            iam.PolicyStatement(
                sid="ReadTopology",
                actions=["ssm:GetParameter"],
                resources=[f"arn:aws:ssm:{r.region}:{account}:parameter{parameter_name(topology.env_name)}"
                           for r in regions],
            ),
            iam.PolicyStatement(
                sid="LockAndJournal",
                actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                         "dynamodb:Query"],
                resources=[site.table_arn(r.region) for r in regions],
            ),
            iam.PolicyStatement(
                sid="WriteEvidence",
                actions=["s3:PutObject", "s3:PutObjectRetention", "s3:GetObject", "s3:ListBucket"],
                resources=[arn for r in regions
                           for arn in (site.bucket_arn(r.evidence_bucket), f"{site.bucket_arn(r.evidence_bucket)}/*")],
            ),
            iam.PolicyStatement(
                sid="CanaryAndVerifyCharts",
                actions=["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket",
                         "s3:ListBucketVersions", "s3:GetReplicationConfiguration"],
                resources=[arn for r in regions
                           for arn in (site.bucket_arn(r.chart_bucket), f"{site.bucket_arn(r.chart_bucket)}/*")],
            ),
            iam.PolicyStatement(
                # drctl retention sync, legal-hold and dispose, on each version of a patient's charts in both
                # regions (Service Authorization Reference, Amazon S3: HeadObject shows a version's lock only with
                # GetObjectRetention / GetObjectLegalHold; DeleteObject of a version id is DeleteObjectVersion).
                # No BypassGovernanceRetention: the charts are in compliance mode, which nobody can bypass.
                sid="RecordsLifecycle",
                actions=["s3:GetObjectRetention", "s3:GetObjectLegalHold", "s3:PutObjectRetention",
                         "s3:PutObjectLegalHold", "s3:DeleteObjectVersion"],
                resources=[f"{site.bucket_arn(r.chart_bucket)}/charts/*" for r in regions],
            ),
            iam.PolicyStatement(
                # drctl retention sync --batch: CreateJob has no resource type, only condition keys (Service
                # Authorization Reference, Amazon S3): limited to retention jobs; DescribeJob is on the job.
                sid="RetentionBatchJobs",
                actions=["s3:CreateJob"],
                resources=["*"],
                conditions={"StringEquals": {"s3:RequestJobOperation": "S3PutObjectRetention"}},
            ),
            iam.PolicyStatement(
                sid="FollowRetentionBatchJobs",
                actions=["s3:DescribeJob"],
                resources=[f"arn:aws:s3:{r.region}:{account}:job/*" for r in regions],
            ),
            iam.PolicyStatement(
                sid="PassTheRetentionBatchRoleToBatchOperationsOnly",
                actions=["iam:PassRole"],
                resources=[r.retention_batch_role_arn for r in regions if r.retention_batch_role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "batchoperations.s3.amazonaws.com"}},
            ),
            iam.PolicyStatement(
                sid="FailOverTheGlobalDatabase",
                actions=["rds:FailoverGlobalCluster", "rds:SwitchoverGlobalCluster", "rds:DescribeGlobalClusters",
                         "rds:DescribeDBClusters", "rds:RemoveFromGlobalCluster"],
                resources=[
                    f"arn:aws:rds::{account}:global-cluster:{topology.global_cluster_id}",
                    *(site.cluster_arn(r.region) for r in regions),
                ],
            ),
            iam.PolicyStatement(
                # Failback keeps AWS's unplanned-global-failover snapshot of the returned cluster (a system snapshot
                # that expires with its retention): a tagged manual copy, in that cluster's region.
                sid="KeepFailoverSnapshots",
                actions=["rds:DescribeDBClusterSnapshots", "rds:CopyDBClusterSnapshot", "rds:AddTagsToResource"],
                resources=[arn for r in regions for arn in (
                    site.failover_snapshot_arn(r.region), site.kept_snapshot_arn(r.region))],
            ),
            iam.PolicyStatement(
                sid="FindFailoverSnapshots",
                actions=["rds:DescribeDBClusterSnapshots"],
                resources=[site.cluster_arn(r.region) for r in regions],
            ),
            iam.PolicyStatement(
                # The copy is encrypted with the region's data key: RDS creates a grant on it for the caller.
                sid="EncryptKeptSnapshots",
                actions=["kms:CreateGrant", "kms:DescribeKey"],
                resources=[f"arn:aws:kms:{r.region}:{account}:key/*" for r in regions],
                conditions={
                    "ForAnyValue:StringEquals": {"kms:ResourceAliases": sorted({r.kms_key_alias for r in regions})},
                    "StringLike": {"kms:ViaService": "rds.*.amazonaws.com"},
                },
            ),
            iam.PolicyStatement(
                sid="ReadDatabaseSecret",
                actions=["secretsmanager:GetSecretValue"],
                resources=[f"arn:aws:secretsmanager:{r.region}:{account}:secret:{topology.db_secret_name}-*"
                           for r in regions],
            ),
            iam.PolicyStatement(
                # cloudwatch:namespace is a condition key of PutMetricData only (AWS's IAM reference): a request
                # always names its namespace, so the gate's metrics are the only ones this role can write.
                sid="GateTraffic",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": TRAFFIC_GATE_NAMESPACE}},
            ),
            iam.PolicyStatement(
                sid="ObserveMetrics", actions=["cloudwatch:GetMetricStatistics", "cloudwatch:GetMetricData"],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="ObserveAlarms", actions=["cloudwatch:DescribeAlarms"],
                resources=[f"arn:aws:cloudwatch:{r.region}:{account}:alarm:{site.prefix}-*" for r in regions],
            ),
            iam.PolicyStatement(
                # A runbook that reaches us-east-1 confirms where DNS answers (docs/runbooks.md, "Traffic gates").
                sid="ConfirmDns", actions=["route53:ListHostedZonesByName", "route53:TestDNSAnswer"], resources=["*"],
            ),
            iam.PolicyStatement(
                # The key policies delegate use through the data services to IAM: evidence and canaries (S3),
                # the lock table (DynamoDB) and the database secret (Secrets Manager) are encrypted with them.
                sid="UseDataKeysThroughServices",
                actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=[f"arn:aws:kms:{r.region}:{account}:key/*" for r in regions],
                conditions={
                    "ForAnyValue:StringEquals": {"kms:ResourceAliases": sorted({r.kms_key_alias for r in regions})},
                    "StringLike": {"kms:ViaService": [f"{service}.*.amazonaws.com"
                                                      for service in ("s3", "dynamodb", "secretsmanager")]},
                },
            ),
            iam.PolicyStatement(
                # `drctl backup` and the drills back up into a vault: StartBackupJob is authorized on the vault
                # (Service Authorization Reference, AWS Backup: StartBackupJob -> backupVault).
                sid="ObserveBackups",
                actions=["backup:ListRecoveryPointsByBackupVault", "backup:DescribeBackupVault",
                         "backup:StartBackupJob"],
                resources=[site.vault_arn(r.region) for r in regions],
            ),
            iam.PolicyStatement(
                # AWS Backup authorizes restores and copies on the recovery point (an Aurora one is an RDS cluster
                # snapshot), not on its vault (Service Authorization Reference, AWS Backup: StartRestoreJob and
                # StartCopyJob -> recoveryPoint).
                sid="RestoreRecoveryPoints",
                actions=["backup:StartRestoreJob", "backup:GetRecoveryPointRestoreMetadata", "backup:StartCopyJob"],
                resources=[arn for r in regions for arn in (
                    f"arn:aws:backup:{r.region}:{account}:recovery-point:*",
                    f"arn:aws:rds:{r.region}:{account}:cluster-snapshot:awsbackup:*")],
            ),
            iam.PolicyStatement(
                # No resource-level permission exists for these (Service Authorization Reference, AWS Backup).
                sid="FollowBackupJobs",
                actions=["backup:DescribeRestoreJob", "backup:DescribeBackupJob", "backup:DescribeCopyJob"],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="PassTheBackupRoleToBackupOnly",
                actions=["iam:PassRole"],
                resources=[r.backup_role_arn for r in regions],
                conditions={"StringEquals": {"iam:PassedToService": "backup.amazonaws.com"}},
            ),
            iam.PolicyStatement(
                # `drctl <runbook> --remote` starts the runbook's state machine in the target region and follows it;
                # `drctl runs` lists both regions' executions.
                sid="RunRunbooksOnStepFunctions",
                actions=["states:StartExecution", "states:ListExecutions"],
                resources=[state_machine_arn(topology, r.region, runbook) for r in regions
                           for runbook in deployed_in(r.region, site.config.dr_region)],
            ),
            iam.PolicyStatement(
                sid="FollowRunbookExecutions", actions=["states:DescribeExecution"],
                resources=[f"arn:aws:states:{r.region}:{account}:execution:{site.prefix}-*" for r in regions],
            ),
            # `drctl drill restore` from a terminal: what the DR runbook function holds for it, and the validations.
            *restore_drill_permissions(
                dr, [f"arn:aws:kms:{dr.region}:{account}:key/*"],
                {"ForAnyValue:StringEquals": {"kms:ResourceAliases": dr.here.kms_key_alias}}, validates=True),
        ],
    )
