"""The chart archive of one region: the chart bucket, its two-way replication, and the region's access-log bucket.

Replication runs both ways with replica modification sync: charts written in the DR region after a failover flow back
to the primary when it returns, and Object Lock retention set on either copy follows. Each direction has Replication
Time Control (15 minutes, with metrics) and replicates delete markers; replicas are encrypted with the destination
region's key, named by alias (no cross-region reference).

S3 refuses a replication rule whose destination bucket does not exist, and each chart bucket is the other's
destination. So only the primary's bucket carries its rule here (the DR archive stack deploys first); the DR bucket's
way-back rule is put by `ArchiveReturnStack` (stacks/archive_return.py) once both buckets exist: one pass.
"""

from __future__ import annotations

import math

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.buckets import locked_bucket
from stacks.replication import replicate_to_partner
from stacks.site import Site

#: Server access logs and VPC flow logs are audit records: kept six years (45 CFR 164.316(b)(2)).
AUDIT_LOG_DAYS = 6 * 366


def replication_rule_id(source_region: str, destination_region: str) -> str:
    """The rule id is a dimension of S3's replication metrics, so the monitoring stack alarms on it by name."""
    return f"charts-{source_region}-to-{destination_region}"


def retention_days(years: int) -> int:
    """Days that cover `years` calendar years, leap days included: disposal never comes before the lock ends."""
    return math.ceil(years * 365.25)


class ArchiveStack(cdk.Stack):
    """`chart_bucket` and `log_bucket` of the region."""

    def __init__(self, scope: Construct, site: Site, key: kms.IKey, *, replicate: bool) -> None:
        super().__init__(scope, site.stack_name("archive"), env=site.env, description=f"{site.prefix} chart archive")
        self.log_bucket = self._log_bucket(site)
        config = site.config
        cold = cdk.Duration.days(config.archive_cold_after_days)
        keep = cdk.Duration.days(retention_days(config.retention_years))
        self.chart_bucket = locked_bucket(
            self,
            "ChartBucket",
            bucket_name=site.here.chart_bucket,
            log_bucket=self.log_bucket,
            key=key,
            retention=keep,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="cold-after-configured-age-dispose-after-retention",
                    transitions=[s3.Transition(storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                                               transition_after=cold)],
                    noncurrent_version_transitions=[
                        s3.NoncurrentVersionTransition(storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                                                       transition_after=cold)
                    ],
                    expiration=keep,
                    noncurrent_version_expiration=keep,
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(7),
                )
            ],
        )
        if replicate:
            replicate_to_partner(self, site, self.chart_bucket, destination=site.partner.chart_bucket,
                                 rule_id=replication_rule_id(site.region, site.partner_region), two_way=True)

    def _log_bucket(self, site: Site) -> s3.Bucket:
        """S3 server access logs accept only SSE-S3 on their target; VPC flow logs land here too."""
        bucket = s3.Bucket(
            self,
            "AccessLogBucket",
            bucket_name=site.here.access_log_bucket,
            versioned=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="audit-log-retention",
                    expiration=cdk.Duration.days(AUDIT_LOG_DAYS),
                    noncurrent_version_expiration=cdk.Duration.days(AUDIT_LOG_DAYS),
                )
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        account = {"aws:SourceAccount": site.config.account}
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="S3ServerAccessLogsFromThisAccount",
                principals=[iam.ServicePrincipal("logging.s3.amazonaws.com")],
                actions=["s3:PutObject"],
                resources=[bucket.arn_for_objects("*")],
                conditions={"StringEquals": account},
            )
        )
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="VpcFlowLogsFromThisAccount",
                principals=[iam.ServicePrincipal("delivery.logs.amazonaws.com")],
                actions=["s3:PutObject", "s3:GetBucketAcl"],
                resources=[bucket.bucket_arn, bucket.arn_for_objects("vpc-flow-logs/*")],
                conditions={"StringEquals": account},
            )
        )
        return bucket
