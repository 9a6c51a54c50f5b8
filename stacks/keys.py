"""The data key of one region: a customer-managed KMS key with rotation, used only through the services holding data.

A key per region rather than one multi-region key (docs/stacks.md argues it): a replica key needs the primary key's
random id, i.e. a cross-region reference, and a multi-region key shares its material, so one compromise or one
scheduled deletion reaches both copies of every record. Each region's key is named by the same alias, so the other
region names it (`Site.key_alias_arn`) without a reference.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.site import Site

#: Services that encrypt data at rest with this key on a caller's behalf (`kms:ViaService`).
DATA_SERVICES = ("s3", "rds", "backup", "secretsmanager", "dynamodb", "sns", "ssm")

_ADMIN_ACTIONS = [
    "kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*", "kms:Revoke*",
    "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
]
_USE_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]


class KeysStack(cdk.Stack):
    """`key`: the region's data key, aliased `topology.regions[region].kms_key_alias`."""

    def __init__(self, scope: Construct, site: Site) -> None:
        super().__init__(scope, site.stack_name("keys"), env=site.env, description=f"{site.prefix} data key")
        self.key = kms.Key(
            self,
            "DataKey",
            description=f"{site.prefix} data at rest in {site.region}: charts, records, backups, audit, secrets",
            enable_key_rotation=True,
            pending_window=cdk.Duration.days(30),
            removal_policy=cdk.RemovalPolicy.RETAIN,
            policy=_key_policy(site),
        )
        kms.Alias(self, "DataKeyAlias", alias_name=site.here.kms_key_alias, target_key=self.key)


def _key_policy(site: Site) -> iam.PolicyDocument:
    """Administration by the account; cryptography only through the data services of this region, or by the log and
    alarm services for their own resources. No principal can decrypt a chart by calling KMS directly."""
    account, region = site.config.account, site.region
    root = iam.AccountRootPrincipal()
    return iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(sid="KeyAdministration", principals=[root], actions=_ADMIN_ACTIONS, resources=["*"]),
            iam.PolicyStatement(
                sid="UseThroughDataServices",
                principals=[root],
                actions=[*_USE_ACTIONS, "kms:CreateGrant", "kms:ListGrants"],
                resources=["*"],
                conditions={
                    "StringEquals": {
                        "kms:CallerAccount": account,
                        "kms:ViaService": [f"{service}.{region}.amazonaws.com" for service in DATA_SERVICES],
                    }
                },
            ),
            iam.PolicyStatement(
                sid="CloudTrailEncryptsLogs",
                principals=[iam.ServicePrincipal("cloudtrail.amazonaws.com")],
                actions=["kms:GenerateDataKey*"],
                resources=["*"],
                conditions={
                    "StringLike": {
                        "kms:EncryptionContext:aws:cloudtrail:arn": f"arn:aws:cloudtrail:*:{account}:trail/*"
                    },
                    "StringEquals": {"aws:SourceAccount": account},
                },
            ),
            iam.PolicyStatement(
                # DescribeKey carries no encryption context, so under the statement above it would never be allowed:
                # AWS's CloudTrail guide ("Configure AWS KMS key policies for CloudTrail") gives it its own statement.
                sid="CloudTrailDescribesKey",
                principals=[iam.ServicePrincipal("cloudtrail.amazonaws.com")],
                actions=["kms:DescribeKey"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": account}},
            ),
            iam.PolicyStatement(
                sid="CloudWatchLogsEncryptsLogGroups",
                principals=[iam.ServicePrincipal(f"logs.{region}.amazonaws.com")],
                actions=_USE_ACTIONS,
                resources=["*"],
                conditions={
                    "ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{region}:{account}:log-group:*"}
                },
            ),
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublishToEncryptedTopic",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": account}},
            ),
        ]
    )
