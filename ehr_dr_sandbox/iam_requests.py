"""What IAM authorizes for one AWS call: its action(s), the resource ARN(s) and the condition keys the request sets.

The action is the Service Authorization Reference's name for the operation (mostly `<prefix>:<Operation>`; S3 and a
few others name theirs differently), the resource the ARN the reference lists for it, built from the request's
parameters; an operation with no resource-level permission, or one this table does not know, is authorized on `*`.
Some calls are authorized more than once (AWS: "Actions, resources, and condition keys" of each service, and the
services' own guides):

- S3 `DeleteObjects` authorizes `s3:DeleteObject` (or `s3:DeleteObjectVersion`) for each key it names, `CopyObject`
  the read of its source and the write of its target, a request naming a version the `...Version` action;
- a call that hands a role to a service (AWS Backup's `IamRoleArn`) also needs `iam:PassRole` on that role, with
  `iam:PassedToService` ("Granting a user permissions to pass a role to an AWS service", IAM User Guide);
- S3 reads and writes of an SSE-KMS object also need `kms:Decrypt` / `kms:GenerateDataKey` on its key, through S3
  (`kms:ViaService`: "Protecting data with server-side encryption with AWS KMS keys", Amazon S3 User Guide).
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from botocore.parsers import RpcV2CBORParser

from ehr_dr_sandbox.dispatch import Call
from ehr_dr_sandbox.iam_policy import ContextValue, Request

#: The IAM prefix of services whose SigV4 signing name differs from it.
IAM_PREFIX = {"monitoring": "cloudwatch", "email": "ses"}
#: S3 operations whose IAM action has another name (Amazon S3 API Reference -> policy actions).
S3_ACTIONS = {
    "HeadObject": "GetObject", "ListObjects": "ListBucket", "ListObjectsV2": "ListBucket", "HeadBucket": "ListBucket",
    "ListObjectVersions": "ListBucketVersions", "ListBuckets": "ListAllMyBuckets",
    "GetBucketReplication": "GetReplicationConfiguration", "PutBucketReplication": "PutReplicationConfiguration",
    "GetObjectLockConfiguration": "GetBucketObjectLockConfiguration",
    "PutObjectLockConfiguration": "PutBucketObjectLockConfiguration",
    "GetBucketEncryption": "GetEncryptionConfiguration", "PutBucketEncryption": "PutEncryptionConfiguration",
    "DeleteBucketEncryption": "PutEncryptionConfiguration",
    "GetPublicAccessBlock": "GetBucketPublicAccessBlock", "PutPublicAccessBlock": "PutBucketPublicAccessBlock",
    "GetBucketLifecycleConfiguration": "GetLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "PutLifecycleConfiguration",
    "CreateMultipartUpload": "PutObject", "UploadPart": "PutObject", "CompleteMultipartUpload": "PutObject",
    "DeleteBucketTagging": "PutBucketTagging",
}
#: ...and their actions when the request names a version (retention and legal hold have no `...Version` action: the
#: same action covers a named version).
S3_VERSIONED = {"GetObject": "GetObjectVersion", "HeadObject": "GetObjectVersion",
                "DeleteObject": "DeleteObjectVersion", "GetObjectTagging": "GetObjectVersionTagging",
                "PutObjectTagging": "PutObjectVersionTagging", "DeleteObjectTagging": "DeleteObjectVersionTagging",
                "GetObjectAcl": "GetObjectVersionAcl", "PutObjectAcl": "PutObjectVersionAcl",
                "GetObjectAttributes": "GetObjectVersionAttributes"}
#: S3 operations on a bucket (the others with a key are on an object; `ListBuckets` on `*`).
S3_ACCOUNT_LEVEL = {"ListBuckets"}


class Estate(Protocol):
    """What a mapping needs to know of the estate beyond the request (moto's state, read by the enforcement)."""

    def key_arn(self, region: str, key_id: str) -> str | None: ...

    def key_aliases(self, key_arn: str) -> list[str]: ...

    def bucket_key(self, bucket: str) -> str | None: ...

    def secret_arn(self, region: str, secret_id: str) -> str: ...

    def partition_key(self, region: str, table: str) -> str | None: ...


@dataclass(frozen=True)
class Mapping:
    """The call in IAM's terms, for one account."""

    call: Call
    account: str
    estate: Estate

    def requests(self) -> list[Request]:
        special = _SPECIAL.get((self.call.service, self.call.operation or ""))
        if special is not None:
            requests = special(self)
        elif self.call.service == "s3":
            requests = self._s3()
        else:
            requests = [self.request(self.action(), self._resource())]
        return [*requests, *self._passed_role()]

    # ------------------------------------------------------------------------------------------------ building blocks

    def action(self, operation: str | None = None) -> str:
        prefix = IAM_PREFIX.get(self.call.service, self.call.service)
        return f"{prefix}:{operation or self.call.operation}"

    def request(self, action: str, resource: str, **context: ContextValue) -> Request:
        base: dict[str, ContextValue] = {"aws:RequestedRegion": self.call.region, "aws:SecureTransport": "false"}
        return Request(action, resource, {**base, **context})

    def arn(self, service: str, resource: str, region: str | None = None) -> str:
        return f"arn:aws:{service}:{self.call.region if region is None else region}:{self.account}:{resource}"

    def params(self) -> dict[str, Any]:
        return self._params

    @cached_property
    def _params(self) -> dict[str, Any]:
        """The request's parameters, whatever the protocol (form fields, JSON, CBOR, URI and query), parsed once."""
        call = self.call
        content_type = call.headers.get("content-type", "")
        if call.protocol in ("query", "ec2"):
            return {key: values[0] for key, values in {**call.form(), **call.query}.items()}
        if "cbor" in content_type and call.body:
            parser = RpcV2CBORParser()
            return {**parser.parse_data_item(parser.get_peekable_stream_from_bytes(call.body)), **call.uri_params}
        body = call.json() if call.protocol in ("json", "rest-json") and call.body.strip() else {}
        return {**{key: values[0] for key, values in call.query.items()}, **body, **call.uri_params}

    def _resource(self) -> str:
        finder = _RESOURCES.get(self.call.service)
        return (finder(self, self.params()) if finder else None) or "*"

    def _passed_role(self) -> list[Request]:
        """`iam:PassRole` of a role a service is given (AWS Backup's jobs run under the role they are passed)."""
        if self.call.service != "backup":
            return []
        role = self.params().get("IamRoleArn")
        if not role:
            return []
        return [self.request("iam:PassRole", role, **{"iam:PassedToService": "backup.amazonaws.com"})]

    # ----------------------------------------------------------------------------------------------------------- S3

    def _s3(self) -> list[Request]:
        operation = self.call.operation or ""
        bucket, key = self.call.uri_params.get("Bucket"), self.call.uri_params.get("Key")
        versioned = "versionId" in self.call.query
        name = S3_VERSIONED[operation] if versioned and operation in S3_VERSIONED else S3_ACTIONS.get(operation,
                                                                                                      operation)
        if operation in S3_ACCOUNT_LEVEL or bucket is None:
            return [self.request(self.action(name), "*")]
        resource = f"arn:aws:s3:::{bucket}" + (f"/{key}" if key is not None else "")
        requests = [self.request(self.action(name), resource)]
        if key is not None and name in ("PutObject", "GetObject", "GetObjectVersion"):
            requests += self._s3_key_use(bucket, "kms:GenerateDataKey" if name == "PutObject" else "kms:Decrypt")
        return requests

    def _s3_key_use(self, bucket: str, action: str) -> list[Request]:
        key_arn = self.estate.bucket_key(bucket)
        if key_arn is None:
            return []
        return [self.request(action, key_arn, **{"kms:ViaService": f"s3.{self.call.region}.amazonaws.com",
                                                 "kms:ResourceAliases": self.estate.key_aliases(key_arn)})]

    def _s3_delete_objects(self) -> list[Request]:
        bucket = self.call.uri_params["Bucket"]
        requests = []
        for entry in ElementTree.fromstring(self.call.body).iter():
            if not entry.tag.endswith("Object"):
                continue
            fields = {child.tag.rpartition("}")[2]: child.text for child in entry}
            action = "s3:DeleteObjectVersion" if fields.get("VersionId") else "s3:DeleteObject"
            requests.append(self.request(action, f"arn:aws:s3:::{bucket}/{fields.get('Key')}"))
        return requests

    def _s3_copy_object(self) -> list[Request]:
        source = self.call.headers.get("x-amz-copy-source", "").lstrip("/")
        path, _, query = source.partition("?")
        read = "s3:GetObjectVersion" if "versionId=" in query else "s3:GetObject"
        target = f"arn:aws:s3:::{self.call.uri_params['Bucket']}/{self.call.uri_params['Key']}"
        return [self.request(read, f"arn:aws:s3:::{path}"), self.request("s3:PutObject", target)]

    # ------------------------------------------------------------------------------------------------ other services

    def _key_request(self) -> list[Request]:
        """KMS: on the key the request names (an alias resolves to its key); its aliases as `kms:ResourceAliases`."""
        key_id = self.params().get("KeyId") or self.params().get("TargetKeyId")
        key_arn = self.estate.key_arn(self.call.region, key_id) if key_id else None
        if key_arn is None:
            return [self.request(self.action(), "*")]
        return [self.request(self.action(), key_arn, **{"kms:ResourceAliases": self.estate.key_aliases(key_arn)})]

    def _described_alarms(self) -> list[Request]:
        """DescribeAlarms is authorized on each alarm it names; with none named (a prefix, or all), on every alarm."""
        names = self.params().get("AlarmNames") or self.call.param_list("AlarmNames")
        return [self.request(self.action(), self.arn("cloudwatch", f"alarm:{name}")) for name in names] or [
            self.request(self.action(), self.arn("cloudwatch", "alarm:*"))]

    def _metric_data(self) -> list[Request]:
        return [self.request(self.action(), "*", **{"cloudwatch:namespace": str(self.params().get("Namespace"))})]

    def _dynamodb(self) -> list[Request]:
        params = self.params()
        table = params.get("TableName", "")
        context: dict[str, ContextValue] = {}
        partition = self.estate.partition_key(self.call.region, table)
        item = params.get("Key") or params.get("Item") or {}
        if partition and partition in item:  # a Query's key is in its expression: not read here
            context["dynamodb:LeadingKeys"] = [next(iter(item[partition].values()))]
        return [self.request(self.action(), self.arn("dynamodb", f"table/{table}"), **context)]


def _rds(mapping: Mapping, params: dict[str, Any]) -> str | None:
    """RDS: the ARN of the resource the identifier names (an identifier may already be an ARN)."""
    for name, kind in (("ResourceName", None), ("SourceDBClusterSnapshotIdentifier", "cluster-snapshot"),
                       ("DBClusterSnapshotIdentifier", "cluster-snapshot"), ("DBInstanceIdentifier", "db"),
                       ("DBClusterIdentifier", "cluster"), ("GlobalClusterIdentifier", "global-cluster")):
        value = params.get(name)
        if not value:
            continue
        if value.startswith("arn:"):
            return value
        return mapping.arn("rds", f"{kind}:{value}", region="" if kind == "global-cluster" else None)
    describes = {"DescribeDBClusters": "cluster", "DescribeDBInstances": "db", "DescribeGlobalClusters":
                 "global-cluster", "DescribeDBClusterSnapshots": "cluster-snapshot"}
    kind = describes.get(mapping.call.operation or "")
    return mapping.arn("rds", f"{kind}:*", region="" if kind == "global-cluster" else None) if kind else None


def _backup(mapping: Mapping, params: dict[str, Any]) -> str | None:
    """AWS Backup: restores and copies on the recovery point, the rest on the vault; job lookups have no resource."""
    if mapping.call.operation in ("DescribeRestoreJob", "DescribeBackupJob", "DescribeCopyJob", "ListBackupJobs",
                                  "ListCopyJobs", "ListRestoreJobs"):
        return None
    if point := params.get("RecoveryPointArn") or params.get("recoveryPointArn"):
        return point
    if plan := params.get("backupPlanId"):  # GetBackupPlan and the plan's other calls: the plan (`backupPlan`)
        return mapping.arn("backup", f"backup-plan:{plan}")
    vault = params.get("BackupVaultName") or params.get("backupVaultName") or params.get("SourceBackupVaultName")
    return mapping.arn("backup", f"backup-vault:{vault}") if vault else None


def _named(template: str, *names: str) -> Callable[[Mapping, dict[str, Any]], str | None]:
    """A resource whose ARN is `template` filled with the first of `names` the request carries (or the ARN itself)."""

    def finder(mapping: Mapping, params: dict[str, Any]) -> str | None:
        value = next((params[name] for name in names if params.get(name)), None)
        if value is None:
            return None
        if str(value).startswith("arn:"):
            return str(value)
        return template.format(region=mapping.call.region, account=mapping.account, name=value)

    return finder


def _secret(mapping: Mapping, params: dict[str, Any]) -> str | None:
    secret = params.get("SecretId")
    return mapping.estate.secret_arn(mapping.call.region, secret) if secret else None


def _parameter(mapping: Mapping, params: dict[str, Any]) -> str | None:
    name = params.get("Name")
    return mapping.arn("ssm", f"parameter{name if str(name).startswith('/') else '/' + str(name)}") if name else None


def _alarms(mapping: Mapping, params: dict[str, Any]) -> str | None:
    """CloudWatch's alarm actions other than DescribeAlarms (which `Mapping._described_alarms` maps) name one alarm."""
    name = params.get("AlarmName")
    return mapping.arn("cloudwatch", f"alarm:{name}") if name else None


_RESOURCES: dict[str, Callable[[Mapping, dict[str, Any]], str | None]] = {
    "rds": _rds,
    "backup": _backup,
    "secretsmanager": _secret,
    "ssm": _parameter,
    "monitoring": _alarms,
    "sns": _named("arn:aws:sns:{region}:{account}:{name}", "TopicArn"),
    "lambda": _named("arn:aws:lambda:{region}:{account}:function:{name}", "FunctionName"),
    "states": _named("{name}", "executionArn", "stateMachineArn"),
    # SimulatePrincipalPolicy is authorized on the principal it simulates (`PolicySourceArn`).
    "iam": _named("arn:aws:iam::{account}:role/{name}", "RoleName", "PolicySourceArn"),
    # EventBridge Scheduler: a schedule, in the default group unless named (`schedule`).
    "scheduler": _named("arn:aws:scheduler:{region}:{account}:schedule/default/{name}", "Name"),
}

_SPECIAL: dict[tuple[str, str], Callable[[Mapping], list[Request]]] = {
    ("s3", "DeleteObjects"): Mapping._s3_delete_objects,
    ("s3", "CopyObject"): Mapping._s3_copy_object,
    ("monitoring", "PutMetricData"): Mapping._metric_data,
    ("monitoring", "DescribeAlarms"): Mapping._described_alarms,
    **{("kms", operation): Mapping._key_request for operation in (
        "DescribeKey", "Encrypt", "Decrypt", "GenerateDataKey", "CreateGrant", "ReEncrypt", "GetKeyPolicy",
        "GetKeyRotationStatus", "ScheduleKeyDeletion", "DisableKey", "EnableKey")},
    **{("dynamodb", operation): Mapping._dynamodb for operation in (
        "GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "DescribeTable", "BatchGetItem")},
}
