"""On-call monitoring in one region: the KMS-encrypted on-call topic and the alarms the runbooks and people watch.

Each region alarms on what it can see: its outgoing S3 replication (latency past the 15-minute RTC window, any failed
operation), the Aurora global replication lag of its cluster against the RPO target, and failed backup or copy jobs
of its vault. Every alarm notifies the on-call topic.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from dr_runbooks.topology import alarm_name
from stacks.archive import replication_rule_id
from stacks.site import Site

PERIOD = cdk.Duration.minutes(5)
RTC_WINDOW_SECONDS = 15 * 60


class MonitoringStack(cdk.Stack):
    """`topic` (`topology.regions[region].oncall_topic_arn`) and the region's alarms, all acting on it."""

    def __init__(self, scope: Construct, site: Site, key: kms.IKey) -> None:
        super().__init__(scope, site.stack_name("monitoring"), env=site.env, description=f"{site.prefix} monitoring")
        self.topic = sns.Topic(
            self,
            "OnCall",
            topic_name=site.here.oncall_topic_arn.rsplit(":", 1)[1],
            display_name=f"{site.prefix} on-call",
            master_key=key,
            enforce_ssl=True,
        )
        if site.config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(site.config.alarm_email))
        self.action = cloudwatch_actions.SnsAction(self.topic)
        for what, metric, threshold in _watched_metrics(site):
            self._alarm(site, what, metric, threshold)

    def _alarm(self, site: Site, what: str, metric: cloudwatch.Metric, threshold: float) -> None:
        alarm = cloudwatch.Alarm(
            self,
            "".join(part.capitalize() for part in what.split("-")),
            alarm_name=alarm_name(site.config, what),
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(self.action)
        alarm.add_ok_action(self.action)


def _watched_metrics(site: Site) -> list[tuple[str, cloudwatch.Metric, float]]:
    """(alarm suffix from REGIONAL_ALARMS, metric, threshold above which it alarms)."""
    replication = {
        "SourceBucket": site.here.chart_bucket,
        "DestinationBucket": site.partner.chart_bucket,
        "RuleId": replication_rule_id(site.region, site.partner_region),
    }
    vault = {"BackupVaultName": site.here.backup_vault}

    def metric(namespace: str, name: str, dimensions: dict[str, str], statistic: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(namespace=namespace, metric_name=name, dimensions_map=dimensions,
                                 statistic=statistic, period=PERIOD)

    return [
        ("s3-replication-latency", metric("AWS/S3", "ReplicationLatency", replication, "Maximum"), RTC_WINDOW_SECONDS),
        ("s3-replication-failed", metric("AWS/S3", "OperationsFailedReplication", replication, "Sum"), 0),
        (
            "aurora-global-lag",
            metric("AWS/RDS", "AuroraGlobalDBReplicationLag", {"DBClusterIdentifier": site.here.db_cluster_id},
                   "Maximum"),
            site.config.rpo_minutes * 60 * 1000,
        ),
        ("backup-job-failed", metric("AWS/Backup", "NumberOfBackupJobsFailed", vault, "Sum"), 0),
        ("backup-copy-failed", metric("AWS/Backup", "NumberOfCopyJobsFailed", vault, "Sum"), 0),
    ]
