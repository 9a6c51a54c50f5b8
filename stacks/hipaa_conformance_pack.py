"""The AWS Config rules of AWS's "Operational Best Practices for HIPAA Security" conformance pack, as this estate
deploys them in both regions.

Every rule of the official pack (`stacks/hipaa_official_rules.py`, vendored with its source commit) is either in
`DEPLOYED_RULES` or in `EXCLUDED_RULES` with the reason it does not apply here; a test holds that the two together are
exactly the official list. Rules that take input parameters get them from the estate's own settings (the backup
plan's schedule and retention) or, where the estate has no setting, AWS's defaults from the official pack.
`ESTATE_RULES` are AWS managed rules the estate adds beyond the pack. Config then evaluates the deployed estate, not
just the templates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from stacks.backup import HOURLY_KEEP

_NO_EC2 = "no EC2 instances, EBS volumes or launch configurations in this estate (Aurora, Lambda and S3 only)"
_NO_LB = "no load balancers in this estate: the application's endpoints are outside it (Route 53 failover records)"

#: AWS managed rule identifiers of the official pack that this estate deploys, in both regions.
DEPLOYED_RULES = (
    "ACCESS_KEYS_ROTATED",
    "AURORA_RESOURCES_PROTECTED_BY_BACKUP_PLAN",
    "BACKUP_PLAN_MIN_FREQUENCY_AND_MIN_RETENTION_CHECK",
    "BACKUP_RECOVERY_POINT_ENCRYPTED",
    "BACKUP_RECOVERY_POINT_MANUAL_DELETION_DISABLED",
    "CLOUD_TRAIL_CLOUD_WATCH_LOGS_ENABLED",
    "CLOUD_TRAIL_ENABLED",
    "CLOUD_TRAIL_ENCRYPTION_ENABLED",
    "CLOUD_TRAIL_LOG_FILE_VALIDATION_ENABLED",
    "CLOUDTRAIL_S3_DATAEVENTS_ENABLED",
    "CLOUDWATCH_ALARM_ACTION_CHECK",
    "DB_INSTANCE_BACKUP_ENABLED",
    "DYNAMODB_AUTOSCALING_ENABLED",
    "DYNAMODB_IN_BACKUP_PLAN",
    "DYNAMODB_PITR_ENABLED",
    "GUARDDUTY_ENABLED_CENTRALIZED",
    "IAM_CUSTOMER_POLICY_BLOCKED_KMS_ACTIONS",
    "IAM_INLINE_POLICY_BLOCKED_KMS_ACTIONS",
    "IAM_NO_INLINE_POLICY_CHECK",
    "IAM_PASSWORD_POLICY",
    "IAM_POLICY_NO_STATEMENTS_WITH_ADMIN_ACCESS",
    "IAM_POLICY_NO_STATEMENTS_WITH_FULL_ACCESS",
    "IAM_ROOT_ACCESS_KEY_CHECK",
    "IAM_USER_MFA_ENABLED",
    "IAM_USER_NO_POLICIES_CHECK",
    "IAM_USER_UNUSED_CREDENTIALS_CHECK",
    "INCOMING_SSH_DISABLED",
    "INTERNET_GATEWAY_AUTHORIZED_VPC_ONLY",
    "KMS_CMK_NOT_SCHEDULED_FOR_DELETION",
    "LAMBDA_FUNCTION_PUBLIC_ACCESS_PROHIBITED",
    "MFA_ENABLED_FOR_IAM_CONSOLE_ACCESS",
    "MULTI_REGION_CLOUD_TRAIL_ENABLED",
    "NO_UNRESTRICTED_ROUTE_TO_IGW",
    "RDS_AUTOMATIC_MINOR_VERSION_UPGRADE_ENABLED",
    "RDS_CLUSTER_DELETION_PROTECTION_ENABLED",
    "RDS_CLUSTER_MULTI_AZ_ENABLED",
    "RDS_ENHANCED_MONITORING_ENABLED",
    "RDS_IN_BACKUP_PLAN",
    "RDS_INSTANCE_PUBLIC_ACCESS_CHECK",
    "RDS_LOGGING_ENABLED",
    "RDS_SNAPSHOT_ENCRYPTED",
    "RDS_SNAPSHOTS_PUBLIC_PROHIBITED",
    "RDS_STORAGE_ENCRYPTED",
    "RESTRICTED_INCOMING_TRAFFIC",
    "ROOT_ACCOUNT_HARDWARE_MFA_ENABLED",
    "ROOT_ACCOUNT_MFA_ENABLED",
    "S3_ACCOUNT_LEVEL_PUBLIC_ACCESS_BLOCKS_PERIODIC",
    "S3_BUCKET_ACL_PROHIBITED",
    "S3_BUCKET_DEFAULT_LOCK_ENABLED",
    "S3_BUCKET_LOGGING_ENABLED",
    "S3_BUCKET_PUBLIC_READ_PROHIBITED",
    "S3_BUCKET_PUBLIC_WRITE_PROHIBITED",
    "S3_BUCKET_REPLICATION_ENABLED",
    "S3_BUCKET_SERVER_SIDE_ENCRYPTION_ENABLED",
    "S3_BUCKET_SSL_REQUESTS_ONLY",
    "S3_BUCKET_VERSIONING_ENABLED",
    "S3_DEFAULT_ENCRYPTION_KMS",
    "S3_EVENT_NOTIFICATIONS_ENABLED",
    "S3_VERSION_LIFECYCLE_POLICY_CHECK",
    "SECRETSMANAGER_ROTATION_ENABLED_CHECK",
    "SECRETSMANAGER_USING_CMK",
    "SECURITYHUB_ENABLED",
    "SNS_ENCRYPTED_KMS",
    "SUBNET_AUTO_ASSIGN_PUBLIC_IP_DISABLED",
    "VPC_DEFAULT_SECURITY_GROUP_CLOSED",
    "VPC_FLOW_LOGS_ENABLED",
    "VPC_SG_OPEN_ONLY_TO_AUTHORIZED_PORTS",
)

#: Every rule of the official pack this estate leaves out, with why.
EXCLUDED_RULES: Mapping[str, str] = {
    "ACM_CERTIFICATE_EXPIRATION_CHECK": "no ACM certificates in this estate",
    "ALB_HTTP_TO_HTTPS_REDIRECTION_CHECK": _NO_LB,
    "ALB_WAF_ENABLED": _NO_LB,
    "API_GW_ASSOCIATED_WITH_WAF": "no API Gateway in this estate",
    "API_GW_EXECUTION_LOGGING_ENABLED": "no API Gateway in this estate",
    "API_GW_SSL_ENABLED": "no API Gateway in this estate",
    "AUTOSCALING_GROUP_ELB_HEALTHCHECK_REQUIRED": _NO_EC2,
    "AUTOSCALING_LAUNCH_CONFIG_PUBLIC_IP_DISABLED": _NO_EC2,
    "CODEBUILD_PROJECT_ENVVAR_AWSCRED_CHECK": "no CodeBuild projects in this estate",
    "CODEBUILD_PROJECT_SOURCE_REPO_URL_CHECK": "no CodeBuild projects in this estate",
    "DMS_REPLICATION_NOT_PUBLIC": "no DMS replication instances: Aurora Global Database replicates the records",
    "DYNAMODB_THROUGHPUT_LIMIT_CHECK": "the one table is on-demand: no provisioned throughput to approach the limits",
    "EBS_IN_BACKUP_PLAN": _NO_EC2,
    "EBS_SNAPSHOT_PUBLIC_RESTORABLE_CHECK": _NO_EC2,
    "EC2_EBS_ENCRYPTION_BY_DEFAULT": _NO_EC2,
    "EC2_IMDSV2_CHECK": _NO_EC2,
    "EC2_INSTANCE_MANAGED_BY_SSM": _NO_EC2,
    "EC2_INSTANCE_NO_PUBLIC_IP": _NO_EC2,
    "EC2_INSTANCE_PROFILE_ATTACHED": _NO_EC2,
    "EC2_MANAGEDINSTANCE_ASSOCIATION_COMPLIANCE_STATUS_CHECK": _NO_EC2,
    "EC2_MANAGEDINSTANCE_PATCH_COMPLIANCE_STATUS_CHECK": _NO_EC2,
    "EC2_RESOURCES_PROTECTED_BY_BACKUP_PLAN": _NO_EC2,
    "EC2_STOPPED_INSTANCE": _NO_EC2,
    "ECS_CONTAINERS_READONLY_ACCESS": "no ECS in this estate",
    "ECS_TASK_DEFINITION_USER_FOR_HOST_MODE_CHECK": "no ECS in this estate",
    "EFS_ENCRYPTED_CHECK": "no EFS file systems in this estate",
    "EFS_IN_BACKUP_PLAN": "no EFS file systems in this estate",
    "ELASTIC_BEANSTALK_MANAGED_UPDATES_ENABLED": "no Elastic Beanstalk in this estate",
    "ELASTICACHE_REDIS_CLUSTER_AUTOMATIC_BACKUP_CHECK": "no ElastiCache in this estate",
    "ELASTICSEARCH_ENCRYPTED_AT_REST": "no OpenSearch/Elasticsearch domains in this estate",
    "ELASTICSEARCH_IN_VPC_ONLY": "no OpenSearch/Elasticsearch domains in this estate",
    "ELASTICSEARCH_LOGS_TO_CLOUDWATCH": "no OpenSearch/Elasticsearch domains in this estate",
    "ELASTICSEARCH_NODE_TO_NODE_ENCRYPTION_CHECK": "no OpenSearch/Elasticsearch domains in this estate",
    "ELB_ACM_CERTIFICATE_REQUIRED": _NO_LB,
    "ELB_CROSS_ZONE_LOAD_BALANCING_ENABLED": _NO_LB,
    "ELB_DELETION_PROTECTION_ENABLED": _NO_LB,
    "ELB_LOGGING_ENABLED": _NO_LB,
    "ELB_PREDEFINED_SECURITY_POLICY_SSL_CHECK": _NO_LB,
    "ELB_TLS_HTTPS_LISTENERS_ONLY": _NO_LB,
    "ELBV2_ACM_CERTIFICATE_REQUIRED": _NO_LB,
    "EMR_KERBEROS_ENABLED": "no EMR clusters in this estate",
    "EMR_MASTER_NO_PUBLIC_IP": "no EMR clusters in this estate",
    "ENCRYPTED_VOLUMES": _NO_EC2,
    "INSTANCES_IN_VPC": _NO_EC2,
    "KINESIS_STREAM_ENCRYPTED": "no Kinesis streams in this estate",
    "OPENSEARCH_ENCRYPTED_AT_REST": "no OpenSearch domains in this estate",
    "OPENSEARCH_HTTPS_REQUIRED": "no OpenSearch domains in this estate",
    "OPENSEARCH_IN_VPC_ONLY": "no OpenSearch domains in this estate",
    "OPENSEARCH_LOGS_TO_CLOUDWATCH": "no OpenSearch domains in this estate",
    "OPENSEARCH_NODE_TO_NODE_ENCRYPTION_CHECK": "no OpenSearch domains in this estate",
    "RDS_MULTI_AZ_SUPPORT": "checks Multi-AZ deployments of single RDS instances; every database instance here "
                            "belongs to an Aurora cluster, which RDS_CLUSTER_MULTI_AZ_ENABLED checks",
    "REDSHIFT_BACKUP_ENABLED": "no Redshift clusters in this estate",
    "REDSHIFT_CLUSTER_CONFIGURATION_CHECK": "no Redshift clusters in this estate",
    "REDSHIFT_CLUSTER_MAINTENANCESETTINGS_CHECK": "no Redshift clusters in this estate",
    "REDSHIFT_CLUSTER_PUBLIC_ACCESS_CHECK": "no Redshift clusters in this estate",
    "REDSHIFT_REQUIRE_TLS_SSL": "no Redshift clusters in this estate",
    "SAGEMAKER_ENDPOINT_CONFIGURATION_KMS_KEY_CONFIGURED": "no SageMaker in this estate",
    "SAGEMAKER_NOTEBOOK_INSTANCE_KMS_KEY_CONFIGURED": "no SageMaker in this estate",
    "SAGEMAKER_NOTEBOOK_NO_DIRECT_INTERNET_ACCESS": "no SageMaker in this estate",
    "SSM_DOCUMENT_NOT_PUBLIC": "the estate owns no SSM documents (its only SSM resource is the topology parameter)",
    "VPC_VPN_2_TUNNELS_UP": "no VPN connections: the estate's VPCs are isolated, reached through AWS APIs only",
    "WAFV2_LOGGING_ENABLED": "no WAF web ACLs in this estate (no load balancer or API to attach one to)",
    "AWS_CONFIG_PROCESS_CHECK": "a manual attestation placeholder (Config never evaluates it); the estate's processes "
                                "are its runbooks and drills, recorded in the evidence bucket",
}

#: AWS managed rules the estate deploys beyond the official pack.
ESTATE_RULES = ("CMK_BACKING_KEY_ROTATION_ENABLED",)

#: Input parameters. The backup rule gets the plan's shortest rule (hourly, kept HOURLY_KEEP): every plan rule must
#: back up at least that often and keep at least that long. Alarm actions: the estate's alarms page on ALARM only
#: (missing data is not an incident for them). The rest are the official pack's defaults.
RULE_PARAMETERS: Mapping[str, Mapping[str, str]] = {
    "ACCESS_KEYS_ROTATED": {"maxAccessKeyAge": "90"},
    "BACKUP_PLAN_MIN_FREQUENCY_AND_MIN_RETENTION_CHECK": {
        "requiredFrequencyValue": "1", "requiredFrequencyUnit": "hours",
        "requiredRetentionDays": str(HOURLY_KEEP.to_days()),
    },
    "CLOUDWATCH_ALARM_ACTION_CHECK": {
        "alarmActionRequired": "true", "insufficientDataActionRequired": "false", "okActionRequired": "false",
    },
    "IAM_CUSTOMER_POLICY_BLOCKED_KMS_ACTIONS": {"blockedActionsPatterns": "kms:*, kms:Decrypt, kms:ReEncrypt*"},
    "IAM_INLINE_POLICY_BLOCKED_KMS_ACTIONS": {"blockedActionsPatterns": "kms:*, kms:Decrypt, kms:ReEncrypt*"},
    "IAM_PASSWORD_POLICY": {
        "MaxPasswordAge": "90", "MinimumPasswordLength": "14", "PasswordReusePrevention": "24",
        "RequireLowercaseCharacters": "true", "RequireNumbers": "true", "RequireSymbols": "true",
        "RequireUppercaseCharacters": "true",
    },
    "IAM_USER_UNUSED_CREDENTIALS_CHECK": {"maxCredentialUsageAge": "90"},
    "RESTRICTED_INCOMING_TRAFFIC": {
        "blockedPort1": "20", "blockedPort2": "21", "blockedPort3": "3389", "blockedPort4": "3306",
        "blockedPort5": "4333",
    },
    "S3_ACCOUNT_LEVEL_PUBLIC_ACCESS_BLOCKS_PERIODIC": {
        "BlockPublicAcls": "true", "BlockPublicPolicy": "true", "IgnorePublicAcls": "true",
        "RestrictPublicBuckets": "true",
    },
}


def config_rule_name(rule: str) -> str:
    return rule.lower().replace("_", "-")


def conformance_pack_template() -> str:
    """The pack as a CloudFormation template body of managed Config rules (what AWS::Config::ConformancePack takes)."""
    resources = {}
    for rule in (*DEPLOYED_RULES, *ESTATE_RULES):
        properties: dict[str, object] = {
            "ConfigRuleName": config_rule_name(rule),
            "Source": {"Owner": "AWS", "SourceIdentifier": rule},
        }
        if rule in RULE_PARAMETERS:
            properties["InputParameters"] = dict(RULE_PARAMETERS[rule])
        resources["".join(part.capitalize() for part in rule.split("_"))] = {
            "Type": "AWS::Config::ConfigRule", "Properties": properties,
        }
    return json.dumps({"Resources": resources}, separators=(",", ":"))
