"""The DR chart bucket's way-back replication rule (DR -> primary), put once both chart buckets exist.

S3 refuses a replication rule whose destination bucket does not exist (PutBucketReplication checks it), and each
chart bucket is the other's destination: the two rules cannot both be properties of buckets that CloudFormation
creates in one pass. The primary's rule stays a property of its bucket (the DR archive stack deploys first); this
stack, in the DR region, depends on both archive stacks and puts the DR bucket's rule with one S3 call
(`stacks/sdk_call.py`), so `cdk deploy --all` builds a new environment in one pass. The rule has the same shape as the
primary's (`stacks/replication.py`); the role S3 assumes for it lives here too.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import custom_resources
from constructs import Construct

from stacks.archive import replication_rule_id
from stacks.replication import replication_role, replication_rule
from stacks.sdk_call import sdk_call
from stacks.site import Site


class ArchiveReturnStack(cdk.Stack):
    def __init__(self, scope: Construct, site: Site, key: kms.IKey) -> None:
        super().__init__(scope, site.stack_name("archive-return"), env=site.env,
                         description=f"{site.prefix} chart archive: the way-back replication rule")
        source, destination = site.here.chart_bucket, site.partner.chart_bucket
        role = replication_role(self, site, source=source, destination=destination)
        rule = replication_rule(site, destination=destination, rule_id=replication_rule_id(site.region,
                                site.partner_region), two_way=True)
        put = custom_resources.AwsSdkCall(
            service="S3",
            action="putBucketReplication",
            parameters={"Bucket": source, "ReplicationConfiguration": {"Role": role.role_arn, "Rules": [rule]}},
            physical_resource_id=custom_resources.PhysicalResourceId.of(f"{source}-replication"),
        )
        sdk_call(
            self,
            "WayBackReplication",
            key=key,
            statements=[
                iam.PolicyStatement(actions=["s3:PutReplicationConfiguration"], resources=[site.bucket_arn(source)]),
                iam.PolicyStatement(actions=["iam:PassRole"], resources=[role.role_arn]),
            ],
            on_create=put,
            on_update=put,
            # Deleting this stack stops the way back, as removing the property from the bucket would.
            on_delete=custom_resources.AwsSdkCall(service="S3", action="deleteBucketReplication",
                                                  parameters={"Bucket": source}),
        )
