"""What the runbooks need in each region to run there while the other region is dark: the topology parameter, the
state table (lock and journal) and the evidence bucket.

The topology is published as `parameter_name(env)` in both regions, the state table and the evidence bucket exist in
both, so a failover run reads its map, takes its lock and writes its evidence in the region it fails over to.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from dr_runbooks.topology import parameter_name
from stacks.archive import retention_days
from stacks.buckets import access_log_bucket, locked_bucket
from stacks.site import Site

#: Audit evidence is kept six years (45 CFR 164.316(b)(2)); drills and failovers write it here.
EVIDENCE_RETENTION_YEARS = 6
#: AWS Config delivers configuration history and snapshots into the evidence bucket, under this prefix.
CONFIG_PREFIX = "aws-config"
STANDARD_PARAMETER_LIMIT = 4096


class RunbookSupportStack(cdk.Stack):
    """`evidence_bucket`, `state_table` and `topology_parameter` of the region."""

    def __init__(self, scope: Construct, site: Site, key: kms.IKey) -> None:
        super().__init__(scope, site.stack_name("runbooks"), env=site.env,
                         description=f"{site.prefix} runbook topology, state and evidence")
        self.evidence_bucket = locked_bucket(
            self,
            "EvidenceBucket",
            bucket_name=site.here.evidence_bucket,
            log_bucket=access_log_bucket(self, site),
            key=key,
            retention=cdk.Duration.days(retention_days(EVIDENCE_RETENTION_YEARS)),
        )
        self._admit_config_delivery(site)
        self.state_table = dynamodb.Table(
            self,
            "StateTable",
            table_name=site.here.runbook_table,
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        value = site.topology.to_json()
        self.topology_parameter = ssm.StringParameter(
            self,
            "Topology",
            parameter_name=parameter_name(site.config.env_name),
            description="ehr-dr topology: every resource a runbook touches, in both regions",
            string_value=value,
            tier=parameter_tier(value),
        )

    def _admit_config_delivery(self, site: Site) -> None:
        """AWS Config's history is audit evidence: its delivery channel writes under `aws-config/` here."""
        bucket = self.evidence_bucket
        account = {"aws:SourceAccount": site.config.account}
        config = iam.ServicePrincipal("config.amazonaws.com")
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AwsConfigChecksBucket", principals=[config], actions=["s3:GetBucketAcl", "s3:ListBucket"],
                resources=[bucket.bucket_arn], conditions={"StringEquals": account},
            )
        )
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AwsConfigDelivers", principals=[config], actions=["s3:PutObject"],
                resources=[bucket.arn_for_objects(f"{CONFIG_PREFIX}/AWSLogs/{site.config.account}/*")],
                conditions={"StringEquals": {**account, "s3:x-amz-acl": "bucket-owner-full-control"}},
            )
        )


def parameter_tier(value: str) -> ssm.ParameterTier:
    """Standard parameters hold 4 KB; a bigger topology (long names, traffic) needs the advanced tier (8 KB)."""
    return ssm.ParameterTier.ADVANCED if len(value.encode()) > STANDARD_PARAMETER_LIMIT else ssm.ParameterTier.STANDARD
