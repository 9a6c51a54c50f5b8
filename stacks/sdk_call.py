"""One AWS SDK call made by CloudFormation at deploy time, for what CloudFormation has no resource for.

CDK's `AwsCustomResource` runs the call from its provider function; here that function gets a role of our own, with a
managed policy holding exactly `statements` and the right to write its own KMS-encrypted log group (CDK's default is
an inline policy and AWS's basic execution role, which the HIPAA pack refuses).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources
from constructs import Construct


def sdk_call(
    scope: Construct,
    construct_id: str,
    *,
    key: kms.IKey,
    statements: list[iam.PolicyStatement],
    on_create: custom_resources.AwsSdkCall,
    on_update: custom_resources.AwsSdkCall | None = None,
    on_delete: custom_resources.AwsSdkCall | None = None,
) -> custom_resources.AwsCustomResource:
    log_group = logs.LogGroup(scope, f"{construct_id}Logs", encryption_key=key,
                              retention=logs.RetentionDays.SIX_YEARS, removal_policy=cdk.RemovalPolicy.RETAIN)
    policy = iam.ManagedPolicy(scope, f"{construct_id}Policy", statements=[
        *statements,
        iam.PolicyStatement(actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[log_group.log_group_arn]),
    ])
    role = iam.Role(scope, f"{construct_id}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                    managed_policies=[policy])
    return custom_resources.AwsCustomResource(
        scope,
        construct_id,
        on_create=on_create,
        on_update=on_update,
        on_delete=on_delete,
        role=role,
        log_group=log_group,
        install_latest_aws_sdk=False,
    )
