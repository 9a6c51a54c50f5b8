"""AWS Backup in one region: a locked vault, and a plan for this region's data with every recovery point copied to the
partner region's vault.

The vault is encrypted with the region's key and locked in compliance mode (after a 3-day grace, nobody can shorten
retention or delete it). The plan backs up the records cluster, the chart bucket, the evidence bucket and the runbook
state table: continuously (point in time, RPO well under 15 minutes), hourly and daily. Both regions have a plan, so
backups go on after a failover; the copy goes to the other region's vault, named by its deterministic ARN.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_backup as backup
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.site import Site

HOURLY_KEEP = cdk.Duration.days(7)
VAULT_LOCK_GRACE = cdk.Duration.days(3)

_BACKUP_ROLE_POLICIES = (
    "service-role/AWSBackupServiceRolePolicyForBackup",
    "service-role/AWSBackupServiceRolePolicyForRestores",
    "AWSBackupServiceRolePolicyForS3Backup",
    "AWSBackupServiceRolePolicyForS3Restore",
)


class BackupStack(cdk.Stack):
    """`vault` (`topology.regions[region].backup_vault`) and the plan covering the region's data."""

    def __init__(self, scope: Construct, site: Site, key: kms.IKey) -> None:
        super().__init__(scope, site.stack_name("backup"), env=site.env, description=f"{site.prefix} backups")
        keep = cdk.Duration.days(site.config.backup_retention_days)
        self.vault = backup.BackupVault(
            self,
            "Vault",
            backup_vault_name=site.here.backup_vault,
            encryption_key=key,
            lock_configuration=backup.LockConfiguration(min_retention=HOURLY_KEEP, changeable_for=VAULT_LOCK_GRACE),
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        partner_vault = backup.BackupVault.from_backup_vault_arn(
            self, "PartnerVault", site.vault_arn(site.partner_region)
        )

        def copy(delete_after: cdk.Duration) -> list[backup.BackupPlanCopyActionProps]:
            return [backup.BackupPlanCopyActionProps(destination_backup_vault=partner_vault, delete_after=delete_after)]

        self.plan = backup.BackupPlan(
            self,
            "Plan",
            backup_plan_name=f"{site.prefix}-{site.region}",
            backup_vault=self.vault,
            backup_plan_rules=[
                backup.BackupPlanRule(
                    rule_name="continuous",
                    enable_continuous_backup=True,
                    schedule_expression=events.Schedule.cron(hour="5", minute="0"),
                    delete_after=keep,
                    copy_actions=copy(keep),
                ),
                backup.BackupPlanRule(
                    rule_name="hourly",
                    schedule_expression=events.Schedule.cron(minute="0"),
                    delete_after=HOURLY_KEEP,
                    copy_actions=copy(HOURLY_KEEP),
                ),
                backup.BackupPlanRule(
                    rule_name="daily",
                    schedule_expression=events.Schedule.cron(hour="3", minute="0"),
                    delete_after=keep,
                    copy_actions=copy(keep),
                ),
            ],
        )
        role = iam.Role(
            self,
            "BackupRole",
            # Named by the topology: restore drills pass this role to StartBackupJob and StartRestoreJob.
            role_name=site.here.backup_role_arn.rsplit("/", 1)[1],
            assumed_by=iam.ServicePrincipal("backup.amazonaws.com"),
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(name) for name in _BACKUP_ROLE_POLICIES],
        )
        self.plan.add_selection(
            "RegionData",
            backup_selection_name=f"{site.prefix}-data",
            role=role,
            resources=[backup.BackupResource.from_arn(arn) for arn in protected_resource_arns(site)],
        )


def protected_resource_arns(site: Site) -> list[str]:
    """What the plan covers, by deterministic ARN: the same names the other stacks create."""
    here = site.here
    return [
        site.cluster_arn(site.region),
        site.bucket_arn(here.chart_bucket),
        site.bucket_arn(here.evidence_bucket),
        site.table_arn(site.region),
    ]
