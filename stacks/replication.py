"""S3 replication from a bucket of this region to its counterpart in the partner region, the one shape both the chart
archive and the audit trail use.

Every rule has Replication Time Control (15 minutes, with metrics, so the monitoring stack can alarm on the rule id),
replicates SSE-KMS objects and encrypts the replicas with the partner region's key, named by alias (no cross-region
reference). Object Lock retention travels with each replicated version (the role reads it).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.site import Site

#: S3 RTC's window and the metrics' threshold: the RPO of everything replicated.
RTC_MINUTES = 15


def replication_rule(site: Site, *, destination: str, rule_id: str, two_way: bool) -> dict[str, Any]:
    """One rule replicating every object to `destination` in the partner region, in S3's API shape (CloudFormation's
    shape but for `Id`, which the API spells `ID`).

    `two_way`: the partner replicates back (replica modification sync keeps retention changes in step, and delete
    markers follow); a one-way copy of records that are never deleted replicates neither.
    """
    window = {"Minutes": RTC_MINUTES}
    both_ways = {"Status": "Enabled" if two_way else "Disabled"}
    return {
        "ID": rule_id,
        "Status": "Enabled",
        "Priority": 1,
        "Filter": {"Prefix": ""},
        "DeleteMarkerReplication": both_ways,
        "SourceSelectionCriteria": {
            "SseKmsEncryptedObjects": {"Status": "Enabled"},
            "ReplicaModifications": both_ways,
        },
        "Destination": {
            "Bucket": site.bucket_arn(destination),
            "EncryptionConfiguration": {"ReplicaKmsKeyID": site.key_alias_arn(site.partner_region)},
            "ReplicationTime": {"Status": "Enabled", "Time": window},
            "Metrics": {"Status": "Enabled", "EventThreshold": window},
        },
    }


def replication_role(scope: Construct, site: Site, *, source: str, destination: str) -> iam.Role:
    """The role S3 assumes to replicate `source` (here) to `destination` (in the partner region)."""
    return iam.Role(
        scope,
        "ReplicationRole",
        assumed_by=iam.ServicePrincipal("s3.amazonaws.com"),
        description=f"S3 replicates {source} to {destination}",
        managed_policies=[_replication_policy(scope, site, source, destination)],
    )


def replicate_to_partner(
    scope: Construct, site: Site, bucket: s3.Bucket, *, destination: str, rule_id: str, two_way: bool
) -> None:
    """Give `bucket` (its CloudFormation resource) one rule replicating to `destination` (see `replication_rule`)."""
    cfn_bucket = bucket.node.default_child
    assert isinstance(cfn_bucket, s3.CfnBucket) and cfn_bucket.bucket_name  # the literal name: no token in the policy
    role = replication_role(scope, site, source=cfn_bucket.bucket_name, destination=destination)
    rule = replication_rule(site, destination=destination, rule_id=rule_id, two_way=two_way)
    cfn_bucket.replication_configuration = s3.CfnBucket.ReplicationConfigurationProperty(
        role=role.role_arn, rules=[_cloudformation_rule(rule)]
    )


def _cloudformation_rule(rule: dict[str, Any]) -> s3.CfnBucket.ReplicationRuleProperty:
    """`replication_rule`'s API shape as CloudFormation's typed property (which cdk-nag reads)."""
    destination, criteria = rule["Destination"], rule["SourceSelectionCriteria"]
    window = s3.CfnBucket.ReplicationTimeValueProperty(minutes=destination["ReplicationTime"]["Time"]["Minutes"])
    return s3.CfnBucket.ReplicationRuleProperty(
        id=rule["ID"],
        status=rule["Status"],
        priority=rule["Priority"],
        filter=s3.CfnBucket.ReplicationRuleFilterProperty(prefix=rule["Filter"]["Prefix"]),
        delete_marker_replication=s3.CfnBucket.DeleteMarkerReplicationProperty(
            status=rule["DeleteMarkerReplication"]["Status"]
        ),
        source_selection_criteria=s3.CfnBucket.SourceSelectionCriteriaProperty(
            sse_kms_encrypted_objects=s3.CfnBucket.SseKmsEncryptedObjectsProperty(
                status=criteria["SseKmsEncryptedObjects"]["Status"]
            ),
            replica_modifications=s3.CfnBucket.ReplicaModificationsProperty(
                status=criteria["ReplicaModifications"]["Status"]
            ),
        ),
        destination=s3.CfnBucket.ReplicationDestinationProperty(
            bucket=destination["Bucket"],
            encryption_configuration=s3.CfnBucket.EncryptionConfigurationProperty(
                replica_kms_key_id=destination["EncryptionConfiguration"]["ReplicaKmsKeyID"]
            ),
            replication_time=s3.CfnBucket.ReplicationTimeProperty(
                status=destination["ReplicationTime"]["Status"], time=window
            ),
            metrics=s3.CfnBucket.MetricsProperty(status=destination["Metrics"]["Status"], event_threshold=window),
        ),
    )


def _replication_policy(scope: Construct, site: Site, source_bucket: str, destination_bucket: str) -> iam.ManagedPolicy:
    """Read versions (with their lock) here, write replicas there, decrypt with this key, encrypt with the partner's."""
    account = site.config.account
    source = site.bucket_arn(source_bucket)
    destination = site.bucket_arn(destination_bucket)
    return iam.ManagedPolicy(
        scope,
        "ReplicationPolicy",
        statements=[
            iam.PolicyStatement(
                actions=["s3:GetReplicationConfiguration", "s3:ListBucket"], resources=[source]
            ),
            iam.PolicyStatement(
                actions=[
                    "s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging",
                    "s3:GetObjectRetention", "s3:GetObjectLegalHold",
                ],
                resources=[f"{source}/*"],
            ),
            iam.PolicyStatement(
                actions=["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags",
                         "s3:ObjectOwnerOverrideToBucketOwner"],
                resources=[f"{destination}/*"],
            ),
            iam.PolicyStatement(
                actions=["kms:Decrypt"],
                resources=[f"arn:aws:kms:{site.region}:{account}:key/*"],
                conditions={
                    "StringEquals": {"kms:ViaService": f"s3.{site.region}.amazonaws.com"},
                    "ForAnyValue:StringEquals": {"kms:ResourceAliases": site.here.kms_key_alias},
                },
            ),
            iam.PolicyStatement(
                actions=["kms:Encrypt", "kms:GenerateDataKey"],
                resources=[f"arn:aws:kms:{site.partner_region}:{account}:key/*"],
                conditions={
                    "StringEquals": {"kms:ViaService": f"s3.{site.partner_region}.amazonaws.com"},
                    "ForAnyValue:StringEquals": {"kms:ResourceAliases": site.partner.kms_key_alias},
                },
            ),
        ],
    )
