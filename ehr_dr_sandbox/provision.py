"""Provision the estate the CDK app deploys, by name and by setting, into the sandbox's moto (both regions).

Everything is created through the sandbox endpoint with boto3, as a deployment would call the APIs, from
`build_topology(config)`: the same names the stacks use. Settings follow the stacks (see `stacks/archive.py`): chart
buckets versioned, Object Lock COMPLIANCE with the configured retention, SSE-KMS with the region's key, replication
both ways (rule `charts-<src>-to-<dst>`, RTC 15 minutes with metrics, delete markers, replica modifications).

Where the sandbox must differ from AWS, on purpose:
- **KMS**: one ordinary key per region under the topology's alias, not a multi-region key with a replica: moto 5.2
  fails decrypt under a multi-region key (AccessDenied), and a runbook only ever names the key by its alias.
- **Traffic**: the sandbox always manages traffic (`sandbox_config` fills the hosted zone and endpoints when cdk.json
  has none), so the traffic gates and failover records exist for a drill to shift.
- **Database secret**: carries the credentials of the local PostgreSQL pair once it is up (sandbox-db's emulation
  overwrites it); until then `PLACEHOLDER_DB_CREDENTIALS`.
"""

from __future__ import annotations

import json
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from dr_runbooks.config import DeploymentConfig
from dr_runbooks.topology import (
    TRAFFIC_GATE_DIMENSION,
    TRAFFIC_GATE_METRIC,
    TRAFFIC_GATE_NAMESPACE,
    TRAFFIC_RECORD_TTL_SECONDS,
    RegionalResources,
    Topology,
    TrafficGate,
    build_topology,
    name_prefix,
    parameter_name,
)
from ehr_dr_sandbox import orchestration
from ehr_dr_sandbox.context import SandboxContext

#: moto's default account: the sandbox always uses it, whatever cdk.json says (no real account is ever involved).
SANDBOX_ACCOUNT = "123456789012"
SANDBOX_ZONE = "ehr-dr.example.com"
EVIDENCE_RETENTION_YEARS = 6
PLACEHOLDER_DB_CREDENTIALS = {"username": "ehr_admin", "password": "sandbox-placeholder", "port": 5432}
#: The application endpoints' health check, as the stacks configure it.
HEALTH_PATH = "/health"
#: The three health checks behind each region's failover record (as the stacks build them): the endpoint answers,
#: the gate alarm is OK, and "serving", the CALCULATED check of both that the record uses.
HEALTH_CHECK_KINDS = ("endpoint", "gate", "serving")
#: AWS Backup, as the backup stack sets it: hourly recovery points kept 7 days (also the vault lock's minimum),
#: and the vault lock's grace period.
HOURLY_KEEP_DAYS = 7
VAULT_LOCK_GRACE_DAYS = 3
#: S3 RTC's replication window: the latency alarm's threshold (seconds).
RTC_WINDOW_SECONDS = 900
ALARM_PERIOD_SECONDS = 300


def sandbox_overrides(context: dict[str, Any]) -> dict[str, Any]:
    """What the sandbox changes in a CDK context: the sandbox account, and traffic keys when it has none."""
    overrides: dict[str, Any] = {"account": SANDBOX_ACCOUNT}
    if not context.get("hosted_zone_name"):
        overrides |= {
            "hosted_zone_name": SANDBOX_ZONE,
            "primary_endpoint": f"app.{context.get('primary_region', 'us-east-1')}.{SANDBOX_ZONE}",
            "dr_endpoint": f"app.{context.get('dr_region', 'us-west-1')}.{SANDBOX_ZONE}",
        }
    return overrides


def sandbox_config(cdk_json: Path) -> DeploymentConfig:
    """The deployment config of `cdk_json`, in the sandbox account, with traffic management on."""
    context = json.loads(cdk_json.read_text()).get("context", {}) if cdk_json.exists() else {}
    return DeploymentConfig.from_cdk_json(cdk_json, sandbox_overrides(context))


def replication_rule_id(source_region: str, destination_region: str) -> str:
    """The stacks' rule id (a dimension of S3's replication metrics)."""
    return f"charts-{source_region}-to-{destination_region}"


def replication_role_arn(config: DeploymentConfig, region: str) -> str:
    return f"arn:aws:iam::{config.account}:role/{name_prefix(config)}-s3-replication-{region}"


def retention_days(years: int) -> int:
    """Days that cover `years` calendar years, leap days included (as the stacks compute it)."""
    return math.ceil(years * 365.25)


def chart_lifecycle(config: DeploymentConfig) -> dict[str, Any]:
    """The chart bucket's lifecycle as the archive stack deploys it (`stacks.archive.chart_lifecycle_rule`): cold by
    age, nothing expires (retention follows the records, docs/lifecycle.md)."""
    cold = [{"Days": config.archive_cold_after_days, "StorageClass": "GLACIER_IR"}]
    return {"Rules": [{
        "ID": "cold-after-configured-age", "Status": "Enabled", "Filter": {"Prefix": ""}, "Transitions": cold,
        "NoncurrentVersionTransitions": [{"NoncurrentDays": config.archive_cold_after_days,
                                          "StorageClass": "GLACIER_IR"}],
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}]}


def health_check_reference(kind: str, region: str) -> str:
    """CallerReference of one of a region's health checks (`HEALTH_CHECK_KINDS`): how the emulation finds it again."""
    return f"ehr-dr-{kind}-{region}"


def provision(context: SandboxContext) -> None:
    """Create the whole estate; both regions concurrently (each region's steps in order)."""
    topology = context.topology
    aws = _Clients(context.endpoint_url)
    with ThreadPoolExecutor(max_workers=2) as pool:
        keys = dict(zip(context.config.regions,
                        pool.map(lambda r: _region(aws, context.config, topology.regions[r]), context.config.regions),
                        strict=True))
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda r: _replication(aws, context.config, topology, r), context.config.regions))
    _database(aws, context.config, topology, keys)
    if topology.traffic:
        _traffic(aws, topology)
    _iam(aws, context, keys)
    # After the stacks' roles: the functions take theirs (created only if the stacks deployed none by that name).
    for region in context.config.regions:
        orchestration.provision(aws, context.config, topology, region)


class _Clients:
    """One client per service and region, made under a lock: a boto3 session is not thread-safe, its clients are."""

    def __init__(self, endpoint_url: str):
        self.endpoint_url = endpoint_url
        self.session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def __call__(self, service: str, region: str) -> Any:
        with self._lock:
            if (service, region) not in self._clients:
                self._clients[service, region] = self.session.client(
                    service, region_name=region, endpoint_url=self.endpoint_url,
                    config=Config(retries={"total_max_attempts": 2, "mode": "standard"}))
            return self._clients[service, region]


def _region(aws: _Clients, config: DeploymentConfig, here: RegionalResources) -> str:
    """A region's own resources; returns its key's ARN."""
    region, topology = here.region, build_topology(config)
    kms = aws("kms", region)
    key_arn = kms.create_key(Description=f"{topology.env_name} data key ({region})")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=here.kms_key_alias, TargetKeyId=key_arn)
    aws("ssm", region).put_parameter(Name=parameter_name(topology.env_name), Value=topology.to_json(), Type="String",
                                     Tier="Advanced", Overwrite=True)
    s3 = aws("s3", region)
    _bucket(s3, here.access_log_bucket, region)
    s3.put_bucket_versioning(Bucket=here.access_log_bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(Bucket=here.access_log_bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    s3.put_bucket_policy(Bucket=here.access_log_bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "S3ServerAccessLogsFromThisAccount", "Effect": "Allow",
        "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{here.access_log_bucket}/*",
        "Condition": {"StringEquals": {"aws:SourceAccount": config.account}}}]}))
    for bucket, days in ((here.chart_bucket, retention_days(config.retention_years)),
                         (here.evidence_bucket, retention_days(EVIDENCE_RETENTION_YEARS))):
        _bucket(s3, bucket, region, object_lock=True)
        s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": days}}})
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn},
            "BucketKeyEnabled": True}]})
        if bucket == here.chart_bucket:
            s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=chart_lifecycle(config))
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True})
        s3.put_bucket_logging(Bucket=bucket, BucketLoggingStatus={"LoggingEnabled": {
            "TargetBucket": here.access_log_bucket, "TargetPrefix": f"{bucket}/"}})
    dynamodb = aws("dynamodb", region)
    dynamodb.create_table(
        TableName=here.runbook_table, BillingMode="PAY_PER_REQUEST", DeletionProtectionEnabled=True,
        SSESpecification={"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key_arn},
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    )
    dynamodb.update_continuous_backups(TableName=here.runbook_table,
                                       PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    sns = aws("sns", region)
    topic_arn = sns.create_topic(Name=here.oncall_topic_arn.rpartition(":")[2],
                                 Attributes={"KmsMasterKeyId": here.kms_key_alias})["TopicArn"]
    cloudwatch = aws("cloudwatch", region)
    for name, alarm in _alarms(config, topology, here).items():
        cloudwatch.put_metric_alarm(AlarmName=name, EvaluationPeriods=1, TreatMissingData="notBreaching",
                                    AlarmActions=[topic_arn], OKActions=[topic_arn], **alarm)
    backup = aws("backup", region)
    backup.create_backup_vault(BackupVaultName=here.backup_vault, EncryptionKeyArn=key_arn)
    backup.put_backup_vault_lock_configuration(BackupVaultName=here.backup_vault, MinRetentionDays=HOURLY_KEEP_DAYS,
                                               ChangeableForDays=VAULT_LOCK_GRACE_DAYS)
    backup.create_backup_plan(BackupPlan=_backup_plan(config, topology, here))
    return key_arn


def _backup_plan(config: DeploymentConfig, topology: Topology, here: RegionalResources) -> dict[str, Any]:
    """The region's plan as the backup stack defines it: continuous, hourly and daily, each copied to the partner."""
    partner = topology.regions[topology.partner(here.region)]
    partner_vault = f"arn:aws:backup:{partner.region}:{topology.account}:backup-vault:{partner.backup_vault}"

    def rule(name: str, cron: str, keep_days: int, continuous: bool = False) -> dict[str, Any]:
        return {"RuleName": name, "TargetBackupVaultName": here.backup_vault, "ScheduleExpression": cron,
                "EnableContinuousBackup": continuous, "Lifecycle": {"DeleteAfterDays": keep_days},
                "CopyActions": [{"DestinationBackupVaultArn": partner_vault,
                                 "Lifecycle": {"DeleteAfterDays": keep_days}}]}

    keep = config.backup_retention_days
    return {"BackupPlanName": f"{name_prefix(config)}-{here.region}", "Rules": [
        rule("continuous", "cron(0 5 * * ? *)", keep, continuous=True),
        rule("hourly", "cron(0 * * * ? *)", HOURLY_KEEP_DAYS),
        rule("daily", "cron(0 3 * * ? *)", keep),
    ]}


def _alarms(config: DeploymentConfig, topology: Topology, here: RegionalResources) -> dict[str, dict[str, Any]]:
    """The region's alarms as the monitoring and audit stacks define them (metric, dimensions, threshold)."""
    partner = topology.regions[topology.partner(here.region)]
    replication = {"SourceBucket": here.chart_bucket, "DestinationBucket": partner.chart_bucket,
                   "RuleId": replication_rule_id(here.region, partner.region)}
    vault = {"BackupVaultName": here.backup_vault}

    def watch(namespace: str, metric: str, dimensions: dict[str, str], statistic: str, threshold: float,
              period: int = ALARM_PERIOD_SECONDS, operator: str = "GreaterThanThreshold") -> dict[str, Any]:
        return {"Namespace": namespace, "MetricName": metric, "Statistic": statistic, "Period": period,
                "Threshold": threshold, "ComparisonOperator": operator,
                "Dimensions": [{"Name": key, "Value": value} for key, value in dimensions.items()]}

    alarms = {
        "s3-replication-latency": watch("AWS/S3", "ReplicationLatency", replication, "Maximum", RTC_WINDOW_SECONDS),
        "s3-replication-failed": watch("AWS/S3", "OperationsFailedReplication", replication, "Sum", 0),
        "aurora-global-lag": watch("AWS/RDS", "AuroraGlobalDBReplicationLag",
                                   {"DBClusterIdentifier": here.db_cluster_id}, "Maximum",
                                   config.rpo_minutes * 60 * 1000),
        "backup-job-failed": watch("AWS/Backup", "NumberOfBackupJobsFailed", vault, "Sum", 0),
        "backup-copy-failed": watch("AWS/Backup", "NumberOfCopyJobsFailed", vault, "Sum", 0),
        "break-glass-assumed": watch("EhrDr/Access", "BreakGlassAssumed", {}, "Sum", 1, period=60,
                                     operator="GreaterThanOrEqualToThreshold"),
    }
    prefix = f"{name_prefix(config)}-"
    return {name: alarms[name.removeprefix(prefix)] for name in here.alarm_names}


def _bucket(s3: Any, name: str, region: str, *, object_lock: bool = False) -> None:
    arguments: dict[str, Any] = {"Bucket": name, "ObjectLockEnabledForBucket": object_lock}
    if region != "us-east-1":
        arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**arguments)
    if object_lock:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def _iam(aws: _Clients, context: SandboxContext, keys: dict[str, str]) -> None:
    """The stacks' roles and their policies (`deployed_iam`), as CloudFormation creates them: each role with its
    trust policy, each of the stacks' policies a customer managed policy attached to it, AWS managed policies attached
    by ARN. The keys' placeholders become the ARNs of the keys created above."""
    from ehr_dr_sandbox.deployed_iam import KEY_ALIAS, deployed_roles

    by_alias = {f"{KEY_ALIAS}{region}:{context.topology.in_region(region).kms_key_alias}": arn
                for region, arn in keys.items()}
    iam = aws("iam", context.config.primary_region)
    for role in deployed_roles(context.cdk_context):
        iam.create_role(RoleName=role.name, AssumeRolePolicyDocument=json.dumps(role.trust))
        for name, document in role.policies.items():
            text = json.dumps(document)
            for placeholder, arn in by_alias.items():
                text = text.replace(placeholder, arn)
            arn = iam.create_policy(PolicyName=name, PolicyDocument=text)["Policy"]["Arn"]
            iam.attach_role_policy(RoleName=role.name, PolicyArn=arn)
        for name in role.aws_managed:
            iam.attach_role_policy(RoleName=role.name, PolicyArn=f"arn:aws:iam::aws:policy/{name}")


def _replication(aws: _Clients, config: DeploymentConfig, topology: Topology, region: str) -> None:
    here, partner = topology.regions[region], topology.regions[topology.partner(region)]
    fifteen = {"Minutes": 15}
    aws("s3", region).put_bucket_replication(Bucket=here.chart_bucket, ReplicationConfiguration={
        "Role": replication_role_arn(config, region),
        "Rules": [{
            "ID": replication_rule_id(region, partner.region), "Status": "Enabled", "Priority": 1,
            "Filter": {"Prefix": ""},
            "DeleteMarkerReplication": {"Status": "Enabled"},
            "SourceSelectionCriteria": {"SseKmsEncryptedObjects": {"Status": "Enabled"},
                                        "ReplicaModifications": {"Status": "Enabled"}},
            "Destination": {
                "Bucket": f"arn:aws:s3:::{partner.chart_bucket}",
                "EncryptionConfiguration": {"ReplicaKmsKeyID": (
                    f"arn:aws:kms:{partner.region}:{config.account}:{partner.kms_key_alias}")},
                "ReplicationTime": {"Status": "Enabled", "Time": fifteen},
                "Metrics": {"Status": "Enabled", "EventThreshold": fifteen},
            },
        }],
    })


def _database(aws: _Clients, config: DeploymentConfig, topology: Topology, keys: dict[str, str]) -> None:
    """The global cluster, its writer in the primary region, its secondary in the DR region, and the secret."""
    primary, dr = topology.regions[topology.primary_region], topology.regions[topology.dr_region]
    aws("rds", primary.region).create_global_cluster(
        GlobalClusterIdentifier=topology.global_cluster_id, Engine="aurora-postgresql", EngineVersion="16.4",
        DatabaseName=topology.database_name, StorageEncrypted=True)
    for here, writer in ((primary, True), (dr, False)):
        arguments: dict[str, Any] = {
            "DBClusterIdentifier": here.db_cluster_id, "Engine": "aurora-postgresql", "EngineVersion": "16.4",
            "GlobalClusterIdentifier": topology.global_cluster_id, "StorageEncrypted": True,
            "KmsKeyId": keys[here.region], "DeletionProtection": True,
            "BackupRetentionPeriod": config.backup_retention_days,
        }
        if writer:
            arguments |= {"DatabaseName": topology.database_name,
                          "MasterUsername": PLACEHOLDER_DB_CREDENTIALS["username"],
                          "MasterUserPassword": PLACEHOLDER_DB_CREDENTIALS["password"]}
        aws("rds", here.region).create_db_cluster(**arguments)
    secret = json.dumps({**PLACEHOLDER_DB_CREDENTIALS, "dbname": topology.database_name, "engine": "postgres"})
    for here in (primary, dr):
        aws("secretsmanager", here.region).create_secret(Name=topology.db_secret_name, SecretString=secret,
                                                         KmsKeyId=here.kms_key_alias)


def _traffic(aws: _Clients, topology: Topology) -> None:
    """Gate alarms in the partner regions, the health checks of each region, failover records in the hosted zone."""
    traffic = topology.traffic
    assert traffic is not None
    route53 = aws("route53", "us-east-1")
    zone_id = route53.create_hosted_zone(Name=traffic.hosted_zone_name, CallerReference=f"ehr-dr-{topology.env_name}")[
        "HostedZone"]["Id"].rpartition("/")[2]
    changes = []
    for region, gate in traffic.gates.items():
        _gate_alarm(aws, gate)
        endpoint = route53.create_health_check(CallerReference=health_check_reference("endpoint", region),
                                               HealthCheckConfig={
            "Type": "HTTPS", "FullyQualifiedDomainName": traffic.endpoints[region], "ResourcePath": HEALTH_PATH,
            "Port": 443, "RequestInterval": 30, "FailureThreshold": 3, "EnableSNI": True,
        })["HealthCheck"]["Id"]
        gate_check = route53.create_health_check(CallerReference=health_check_reference("gate", region),
                                                 HealthCheckConfig={
            "Type": "CLOUDWATCH_METRIC",
            "AlarmIdentifier": {"Region": gate.alarm_region, "Name": gate.alarm_name},
            "InsufficientDataHealthStatus": "LastKnownStatus",
        })["HealthCheck"]["Id"]
        serving = route53.create_health_check(CallerReference=health_check_reference("serving", region),
                                              HealthCheckConfig={
            "Type": "CALCULATED", "ChildHealthChecks": [endpoint, gate_check], "HealthThreshold": 2,
        })["HealthCheck"]["Id"]
        changes.append({"Action": "CREATE", "ResourceRecordSet": {
            "Name": traffic.record_name, "Type": "CNAME", "TTL": TRAFFIC_RECORD_TTL_SECONDS, "SetIdentifier": region,
            "Failover": "PRIMARY" if region == topology.primary_region else "SECONDARY",
            "HealthCheckId": serving, "ResourceRecords": [{"Value": traffic.endpoints[region]}],
        }})
    route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})


def _gate_alarm(aws: _Clients, gate: TrafficGate) -> None:
    aws("cloudwatch", gate.alarm_region).put_metric_alarm(
        AlarmName=gate.alarm_name, Namespace=TRAFFIC_GATE_NAMESPACE, MetricName=TRAFFIC_GATE_METRIC,
        Dimensions=[{"Name": TRAFFIC_GATE_DIMENSION, "Value": gate.dimension_value}], Statistic="Maximum", Period=60,
        EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="ignore")

