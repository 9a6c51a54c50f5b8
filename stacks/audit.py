"""Audit in one region: GuardDuty, Security Hub, Amazon Inspector for the Lambda functions, an AWS Config recorder with
the HIPAA Security conformance pack, and a CloudTrail trail delivering to an Object Lock bucket of this region.

The primary region's trail is multi-region: it records every region's management events and the S3 data events of
all four chart and evidence buckets, and its bucket replicates (RTC, Object Lock retention kept, DR key) into the DR
region's trail bucket. The DR region's trail records that region's own events into that same DR bucket, under its own
prefix: while us-east-1 is dark, the failover's calls in us-west-1 are still delivered, and readable, in us-west-1
(docs/stacks.md, "Audit logs that survive the primary region"). Each trail validates its log files, encrypts them with
its region's key and delivers to CloudWatch Logs too; a metric filter on the primary's log group raises the
break-glass alarm whenever the break-glass role is assumed, in any region.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudtrail as cloudtrail
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_config as config_
from aws_cdk import aws_guardduty as guardduty
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_securityhub as securityhub
from aws_cdk import aws_sns as sns
from aws_cdk import custom_resources
from constructs import Construct

from dr_runbooks.topology import alarm_name, bucket_name
from stacks.archive import retention_days
from stacks.buckets import access_log_bucket, locked_bucket
from stacks.hipaa_conformance_pack import conformance_pack_template
from stacks.replication import replicate_to_partner
from stacks.runbook_support import CONFIG_PREFIX, EVIDENCE_RETENTION_YEARS
from stacks.sdk_call import sdk_call
from stacks.site import Site

BREAK_GLASS_METRIC_NAMESPACE = "EhrDr/Access"
BREAK_GLASS_METRIC = "BreakGlassAssumed"


#: Where the DR region's own trail writes in the DR trail bucket; the primary's replicated files keep their keys
#: (`AWSLogs/...`), so the two trails' files never mix.
DR_TRAIL_PREFIX = "dr-trail"


def trail_name(site: Site) -> str:
    return f"{site.prefix}-audit" if site.is_primary else f"{site.prefix}-audit-{site.region}"


def trail_bucket_name(site: Site, region: str | None = None) -> str:
    return bucket_name(site.config, "trail", region or site.region)


def trail_replication_rule_id(site: Site) -> str:
    return f"trail-{site.region}-to-{site.partner_region}"


class AuditStack(cdk.Stack):
    def __init__(self, scope: Construct, site: Site, key: kms.IKey) -> None:
        super().__init__(scope, site.stack_name("audit"), env=site.env, description=f"{site.prefix} audit")
        guardduty.CfnDetector(
            self,
            "GuardDuty",
            enable=True,
            finding_publishing_frequency="FIFTEEN_MINUTES",
            features=[
                guardduty.CfnDetector.CFNFeatureConfigurationProperty(name=name, status="ENABLED")
                for name in ("S3_DATA_EVENTS", "RDS_LOGIN_EVENTS")
            ],
        )
        self._config_recorder(site, key)
        self._trail(site, key)
        self._security_hub(site)
        self._inspector_for_lambda(site, key)

    def _security_hub(self, site: Site) -> None:
        """Security Hub with AWS's default standards in each region; the DR region aggregates both regions' findings,
        so they are read in us-west-1 while us-east-1 is dark (an account has one aggregation region)."""
        hub = securityhub.CfnHub(self, "SecurityHub", enable_default_standards=True, auto_enable_controls=True)
        if not site.is_primary:
            aggregator = securityhub.CfnFindingAggregator(
                self, "FindingAggregator", region_linking_mode="SPECIFIED_REGIONS", regions=[site.partner_region]
            )
            aggregator.node.add_dependency(hub)

    def _inspector_for_lambda(self, site: Site, key: kms.IKey) -> None:
        """Amazon Inspector scanning of this region's Lambda functions (standard scanning: packages, on every new
        version and whenever a new CVE is published). CloudFormation has no resource that enables Inspector, so one
        SDK call does (inspector2:Enable, which creates Inspector's service-linked role)."""
        account = site.config.account
        call = {"accountIds": [account], "resourceTypes": ["LAMBDA"]}
        enabled = custom_resources.PhysicalResourceId.of(f"inspector2-lambda-{account}-{site.region}")
        sdk_call(
            self,
            "InspectorLambdaScanning",
            key=key,
            statements=[
                iam.PolicyStatement(actions=["inspector2:Enable", "inspector2:Disable"], resources=["*"]),
                iam.PolicyStatement(
                    actions=["iam:CreateServiceLinkedRole"],
                    resources=[f"arn:aws:iam::{account}:role/aws-service-role/inspector2.amazonaws.com/"
                               "AWSServiceRoleForAmazonInspector2"],
                    conditions={"StringEquals": {"iam:AWSServiceName": "inspector2.amazonaws.com"}},
                ),
            ],
            on_create=custom_resources.AwsSdkCall(service="Inspector2", action="enable", parameters=call,
                                                  physical_resource_id=enabled),
            on_delete=custom_resources.AwsSdkCall(service="Inspector2", action="disable", parameters=call),
        )

    def _config_recorder(self, site: Site, key: kms.IKey) -> None:
        evidence = site.bucket_arn(site.here.evidence_bucket)
        delivery = iam.ManagedPolicy(
            self,
            "ConfigDeliveryPolicy",
            statements=[
                iam.PolicyStatement(actions=["s3:GetBucketAcl"], resources=[evidence]),
                iam.PolicyStatement(
                    actions=["s3:PutObject"],
                    resources=[f"{evidence}/{CONFIG_PREFIX}/AWSLogs/{site.config.account}/*"],
                ),
                iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key.key_arn]),
            ],
        )
        # A role of our own, not the account's service-linked role (one per account, maybe made elsewhere): it
        # needs the write to the evidence bucket that AWS_ConfigRole does not grant.
        role = iam.Role(
            self,
            "ConfigRole",
            assumed_by=iam.ServicePrincipal("config.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWS_ConfigRole"),
                delivery,
            ],
        )
        recorder = config_.CfnConfigurationRecorder(
            self,
            "Recorder",
            role_arn=role.role_arn,
            recording_group=config_.CfnConfigurationRecorder.RecordingGroupProperty(
                all_supported=True, include_global_resource_types=site.is_primary
            ),
        )
        channel = config_.CfnDeliveryChannel(
            self,
            "DeliveryChannel",
            s3_bucket_name=site.here.evidence_bucket,
            s3_key_prefix=CONFIG_PREFIX,
            s3_kms_key_arn=key.key_arn,
        )
        pack = config_.CfnConformancePack(
            self,
            "HipaaSecurity",
            conformance_pack_name=f"{site.prefix}-hipaa-security",
            template_body=conformance_pack_template(),
        )
        pack.node.add_dependency(recorder, channel)

    def _trail(self, site: Site, key: kms.IKey) -> None:
        account, region = site.config.account, site.region
        arn = f"arn:aws:cloudtrail:{region}:{account}:trail/{trail_name(site)}"
        prefix = None if site.is_primary else DR_TRAIL_PREFIX
        bucket = locked_bucket(
            self,
            "TrailBucket",
            bucket_name=trail_bucket_name(site),
            log_bucket=access_log_bucket(self, site),
            key=key,
            retention=cdk.Duration.days(retention_days(EVIDENCE_RETENTION_YEARS)),
        )
        if site.is_primary:  # one way: the DR bucket is the copy that outlives us-east-1
            replicate_to_partner(self, site, bucket, destination=trail_bucket_name(site, site.partner_region),
                                 rule_id=trail_replication_rule_id(site), two_way=False)
        service = iam.ServicePrincipal("cloudtrail.amazonaws.com")
        from_this_trail = {"StringEquals": {"aws:SourceArn": arn}}
        bucket.add_to_resource_policy(
            iam.PolicyStatement(sid="CloudTrailChecksBucket", principals=[service], actions=["s3:GetBucketAcl"],
                                resources=[bucket.bucket_arn], conditions=from_this_trail)
        )
        logs_key = f"{prefix}/AWSLogs/{account}/*" if prefix else f"AWSLogs/{account}/*"
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudTrailDelivers", principals=[service], actions=["s3:PutObject"],
                resources=[bucket.arn_for_objects(logs_key)],
                conditions={"StringEquals": {"aws:SourceArn": arn, "s3:x-amz-acl": "bucket-owner-full-control"}},
            )
        )
        log_group = logs.LogGroup(
            self, "TrailLogs", log_group_name=f"/{site.prefix}/cloudtrail", encryption_key=key,
            retention=logs.RetentionDays.SIX_YEARS, removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        delivery_role = iam.Role(
            self,
            "TrailToLogsRole",
            assumed_by=service,
            managed_policies=[
                iam.ManagedPolicy(
                    self,
                    "TrailToLogsPolicy",
                    statements=[
                        iam.PolicyStatement(
                            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                            resources=[f"{log_group.log_group_arn}"],
                        )
                    ],
                )
            ],
        )
        # Data events of the charts (who read which chart) and of the evidence (who wrote or read an auditor's record):
        # the multi-region trail watches all four buckets, the DR trail the two of its region (a trail of one region
        # sees only that region's events).
        watched_regions = site.topology.regions.values() if site.is_primary else [site.here]
        watched = [f"arn:aws:s3:::{bucket}/" for resources in watched_regions
                   for bucket in (resources.chart_bucket, resources.evidence_bucket)]
        trail = cloudtrail.CfnTrail(
            self,
            "Trail",
            trail_name=trail_name(site),
            is_logging=True,
            is_multi_region_trail=site.is_primary,
            # Global services (IAM, STS's global endpoint) log in us-east-1: the multi-region trail has them.
            include_global_service_events=site.is_primary,
            enable_log_file_validation=True,
            kms_key_id=key.key_arn,
            s3_bucket_name=bucket.bucket_name,
            s3_key_prefix=prefix,
            cloud_watch_logs_log_group_arn=log_group.log_group_arn,
            cloud_watch_logs_role_arn=delivery_role.role_arn,
            event_selectors=[
                cloudtrail.CfnTrail.EventSelectorProperty(
                    read_write_type="All",
                    include_management_events=True,
                    data_resources=[cloudtrail.CfnTrail.DataResourceProperty(type="AWS::S3::Object", values=watched)],
                )
            ],
        )
        assert bucket.policy is not None
        trail.node.add_dependency(bucket.policy)
        if site.is_primary:
            self._break_glass_alarm(site, log_group)

    def _break_glass_alarm(self, site: Site, log_group: logs.LogGroup) -> None:
        role_arn = site.topology.role_arns["break-glass"]
        metric = logs.MetricFilter(
            self,
            "BreakGlassAssumed",
            log_group=log_group,
            metric_namespace=BREAK_GLASS_METRIC_NAMESPACE,
            metric_name=BREAK_GLASS_METRIC,
            metric_value="1",
            filter_pattern=logs.FilterPattern.all(
                logs.FilterPattern.string_value("$.eventName", "=", "AssumeRole"),
                logs.FilterPattern.string_value("$.requestParameters.roleArn", "=", role_arn),
            ),
        ).metric(statistic="Sum", period=cdk.Duration.minutes(1))
        alarm = cloudwatch.Alarm(
            self,
            "BreakGlassAlarm",
            alarm_name=alarm_name(site.config, "break-glass-assumed"),
            alarm_description="The break-glass role was assumed: confirm the incident ticket and who holds it",
            metric=metric,
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        topic = sns.Topic.from_topic_arn(self, "OnCall", site.here.oncall_topic_arn)
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
