"""The AWS Config rules of the HIPAA Security conformance pack that apply to this estate's resource types.

AWS publishes the full pack as a sample template on the web; synth is offline, so the estate deploys the subset
that covers what it holds (S3, KMS, RDS, DynamoDB, Backup, CloudTrail, GuardDuty, VPC, Secrets Manager, SNS, IAM),
each an AWS managed rule with AWS's identifier. Config then evaluates the deployed estate, not just the templates.
"""

from __future__ import annotations

import json

#: AWS managed Config rule identifiers from the HIPAA Security operational best practices.
HIPAA_SECURITY_RULES = (
    "S3_BUCKET_SSL_REQUESTS_ONLY",
    "S3_BUCKET_REPLICATION_ENABLED",
    "S3_DEFAULT_ENCRYPTION_KMS",
    "S3_BUCKET_VERSIONING_ENABLED",
    "S3_BUCKET_LOGGING_ENABLED",
    "S3_BUCKET_PUBLIC_READ_PROHIBITED",
    "S3_BUCKET_PUBLIC_WRITE_PROHIBITED",
    "CMK_BACKING_KEY_ROTATION_ENABLED",
    "KMS_CMK_NOT_SCHEDULED_FOR_DELETION",
    "RDS_STORAGE_ENCRYPTED",
    "RDS_CLUSTER_DELETION_PROTECTION_ENABLED",
    "RDS_CLUSTER_IAM_AUTHENTICATION_ENABLED",
    "RDS_IN_BACKUP_PLAN",
    "RDS_INSTANCE_PUBLIC_ACCESS_CHECK",
    "DYNAMODB_PITR_ENABLED",
    "DYNAMODB_IN_BACKUP_PLAN",
    "BACKUP_RECOVERY_POINT_ENCRYPTED",
    "CLOUD_TRAIL_ENCRYPTION_ENABLED",
    "CLOUD_TRAIL_LOG_FILE_VALIDATION_ENABLED",
    "CLOUD_TRAIL_CLOUD_WATCH_LOGS_ENABLED",
    "MULTI_REGION_CLOUD_TRAIL_ENABLED",
    "GUARDDUTY_ENABLED_CENTRALIZED",
    "VPC_FLOW_LOGS_ENABLED",
    "SECRETSMANAGER_ROTATION_ENABLED_CHECK",
    "SNS_ENCRYPTED_KMS",
    "CLOUDWATCH_ALARM_ACTION_CHECK",
    "IAM_ROOT_ACCESS_KEY_CHECK",
    "ROOT_ACCOUNT_MFA_ENABLED",
)


def conformance_pack_template() -> str:
    """The pack as a CloudFormation template body of managed Config rules (what AWS::Config::ConformancePack takes)."""
    resources = {
        "".join(part.capitalize() for part in rule.split("_")): {
            "Type": "AWS::Config::ConfigRule",
            "Properties": {
                "ConfigRuleName": rule.lower().replace("_", "-"),
                "Source": {"Owner": "AWS", "SourceIdentifier": rule},
            },
        }
        for rule in HIPAA_SECURITY_RULES
    }
    return json.dumps({"Resources": resources}, separators=(",", ":"))
