"""The bucket shapes every concern shares, so a property like "TLS only" is written once and tested once.

`locked_bucket`: the write-once shape of records, evidence and audit logs (versioning, Object Lock in compliance mode,
SSE-KMS with bucket keys, no public access, TLS only, server access logs). `access_log_bucket` imports the region's
log target by its deterministic name, which the archive stack creates.
"""

from __future__ import annotations

import typing

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.site import Site


def access_log_bucket(scope: Construct, site: Site) -> s3.IBucket:
    """The region's server-access-log target, by name (created in the archive stack, whose policy admits S3 logging)."""
    stack = cdk.Stack.of(scope)
    existing = stack.node.try_find_child("AccessLogBucket")
    if existing is not None:
        return typing.cast(s3.IBucket, existing)
    return s3.Bucket.from_bucket_name(stack, "AccessLogBucket", site.here.access_log_bucket)


def locked_bucket(
    scope: Construct,
    construct_id: str,
    *,
    bucket_name: str,
    log_bucket: s3.IBucket,
    key: kms.IKey,
    retention: cdk.Duration,
    lifecycle_rules: list[s3.LifecycleRule] | None = None,
) -> s3.Bucket:
    """A bucket nobody, not even the account root, can empty before `retention` ends (Object Lock compliance mode)."""
    return s3.Bucket(
        scope,
        construct_id,
        bucket_name=bucket_name,
        versioned=True,
        object_lock_enabled=True,
        object_lock_default_retention=s3.ObjectLockRetention.compliance(retention),
        encryption=s3.BucketEncryption.KMS,
        encryption_key=key,
        bucket_key_enabled=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        enforce_ssl=True,
        server_access_logs_bucket=log_bucket,
        server_access_logs_prefix=f"{bucket_name}/",
        lifecycle_rules=lifecycle_rules,
        removal_policy=cdk.RemovalPolicy.RETAIN,
    )
