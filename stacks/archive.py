"""The chart archive of one region: the chart bucket, its two-way replication, and the region's access-log bucket.

Chart versions go cold by age but never expire by age: retention follows the patient's records (docs/lifecycle.md).

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


#: The chart bucket's one lifecycle rule; the sandbox provisions the same (the drift test holds them together).
CHART_LIFECYCLE_RULE_ID = "cold-after-configured-age"


def chart_lifecycle_rule(cold: cdk.Duration) -> s3.LifecycleRule:
    """Charts move to Glacier Instant Retrieval by age (current and noncurrent versions alike); nothing expires."""
    return s3.LifecycleRule(
        id=CHART_LIFECYCLE_RULE_ID,
        transitions=[s3.Transition(storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL, transition_after=cold)],
        noncurrent_version_transitions=[
            s3.NoncurrentVersionTransition(storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                                           transition_after=cold)
        ],
        abort_incomplete_multipart_upload_after=cdk.Duration.days(7),
    )


class ArchiveStack(cdk.Stack):
    """`chart_bucket` and `log_bucket` of the region."""

    def __init__(self, scope: Construct, site: Site, key: kms.IKey, *, replicate: bool) -> None:
        super().__init__(scope, site.stack_name("archive"), env=site.env, description=f"{site.prefix} chart archive")
        self.log_bucket = self._log_bucket(site)
        config = site.config
        cold = cdk.Duration.days(config.archive_cold_after_days)
        # No expiration: a chart version is kept as long as its patient's records are (last visit + retention, set
        # on each version as Object Lock retain-until by `drctl retention sync`), and disposed of only by `drctl
        # dispose`, which certifies it. The bucket's default retention covers a version until its first sync.
        self.chart_bucket = locked_bucket(
            self,
            "ChartBucket",
            bucket_name=site.here.chart_bucket,
            log_bucket=self.log_bucket,
            key=key,
            retention=cdk.Duration.days(retention_days(config.retention_years)),
            lifecycle_rules=[chart_lifecycle_rule(cold)],
        )
        if replicate:
            replicate_to_partner(self, site, self.chart_bucket, destination=site.partner.chart_bucket,
                                 rule_id=replication_rule_id(site.region, site.partner_region), two_way=True)
        self._retention_batch_role(site, key)

    def _retention_batch_role(self, site: Site, key: kms.IKey) -> None:
        """The role S3 Batch Operations assumes for `drctl retention sync --batch` (named by the topology, which the
        operator passes): extend the retention of chart versions listed in a manifest the runbook wrote into the
        evidence bucket, and write the job's report beside it (S3 User Guide, "Using S3 Object Lock retention with
        S3 Batch Operations")."""
        here = site.here
        charts, evidence = site.bucket_arn(here.chart_bucket), site.bucket_arn(here.evidence_bucket)
        assert here.retention_batch_role_arn is not None
        iam.Role(
            self, "RetentionBatchRole", role_name=here.retention_batch_role_arn.rsplit("/", 1)[1],
            assumed_by=iam.ServicePrincipal("batchoperations.s3.amazonaws.com", conditions={
                "StringEquals": {"aws:SourceAccount": site.config.account}}),
            description=f"S3 Batch Operations extends chart retention in {here.chart_bucket}",
            managed_policies=[iam.ManagedPolicy(self, "RetentionBatchPolicy", statements=[
                iam.PolicyStatement(actions=["s3:PutObjectRetention"], resources=[f"{charts}/charts/*"]),
                iam.PolicyStatement(actions=["s3:GetBucketObjectLockConfiguration"], resources=[charts]),
                iam.PolicyStatement(actions=["s3:GetObject", "s3:GetObjectVersion"],
                                    resources=[f"{evidence}/lifecycle/manifests/*"]),
                iam.PolicyStatement(actions=["s3:PutObject"], resources=[f"{evidence}/lifecycle/batch-reports/*"]),
                iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn],
                                    conditions={"StringEquals": {"kms:ViaService": f"s3.{site.region}.amazonaws.com"}}),
            ])],
        )

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
