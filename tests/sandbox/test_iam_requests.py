"""What the sandbox authorizes for a call: the Service Authorization Reference's actions and resources, and the
authorizations AWS adds (each key of a batch delete, a passed role, the KMS key behind an SSE-KMS object)."""

from __future__ import annotations

import json

from ehr_dr_sandbox.dispatch import Call
from ehr_dr_sandbox.iam_requests import Mapping

ACCOUNT = "123456789012"
KEY = f"arn:aws:kms:us-west-1:{ACCOUNT}:key/1234"


class Estate:
    def key_arn(self, region: str, key_id: str) -> str | None:
        return KEY if key_id in ("alias/data", KEY) else None

    def key_aliases(self, key_arn: str) -> list[str]:
        return ["alias/data"]

    def bucket_key(self, bucket: str) -> str | None:
        return KEY if bucket == "charts" else None

    def secret_arn(self, region: str, secret_id: str) -> str:
        return f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{secret_id}-AbCdEf"

    def partition_key(self, region: str, table: str) -> str | None:
        return "pk"


def call(service: str, operation: str, protocol: str, *, query: dict | None = None, body: bytes = b"",
         uri: dict | None = None, headers: dict | None = None) -> Call:
    content = {"json": "application/x-amz-json-1.0", "query": "application/x-www-form-urlencoded"}.get(protocol, "")
    return Call(service, "us-west-1", operation, protocol, "POST", "/", query or {},
                {"content-type": content, **(headers or {})}, body, uri or {})


def requests(c: Call) -> list[tuple[str, str]]:
    return [(r.action, r.resource) for r in Mapping(c, ACCOUNT, Estate()).requests()]


def test_reading_a_named_version_is_get_object_version_and_needs_the_bucket_key_through_s3() -> None:
    read = Mapping(call("s3", "GetObject", "rest-xml", query={"versionId": ["v1"]},
                        uri={"Bucket": "charts", "Key": "p/1.pdf"}), ACCOUNT, Estate()).requests()
    assert [(r.action, r.resource) for r in read] == [("s3:GetObjectVersion", "arn:aws:s3:::charts/p/1.pdf"),
                                                     ("kms:Decrypt", KEY)]
    assert read[1].context["kms:ViaService"] == "s3.us-west-1.amazonaws.com"


def test_listing_versions_is_list_bucket_versions_on_the_bucket() -> None:
    assert requests(call("s3", "ListObjectVersions", "rest-xml", uri={"Bucket": "scratch"})) == [
        ("s3:ListBucketVersions", "arn:aws:s3:::scratch")]


def test_a_batch_delete_is_authorized_key_by_key() -> None:
    body = (b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>a</Key><VersionId>1</VersionId>'
            b"</Object><Object><Key>b</Key></Object></Delete>")
    assert requests(call("s3", "DeleteObjects", "rest-xml", body=body, uri={"Bucket": "scratch"})) == [
        ("s3:DeleteObjectVersion", "arn:aws:s3:::scratch/a"), ("s3:DeleteObject", "arn:aws:s3:::scratch/b")]


def test_a_restore_is_authorized_on_its_recovery_point_and_passes_the_backup_role_to_backup() -> None:
    point = f"arn:aws:rds:us-west-1:{ACCOUNT}:cluster-snapshot:awsbackup:job-1"
    role = f"arn:aws:iam::{ACCOUNT}:role/backup"
    mapped = Mapping(call("backup", "StartRestoreJob", "rest-json",
                          body=json.dumps({"RecoveryPointArn": point, "IamRoleArn": role}).encode()),
                     ACCOUNT, Estate()).requests()
    assert [(r.action, r.resource) for r in mapped] == [("backup:StartRestoreJob", point), ("iam:PassRole", role)]
    assert mapped[1].context["iam:PassedToService"] == "backup.amazonaws.com"


def test_following_a_restore_job_has_no_resource() -> None:
    assert requests(call("backup", "DescribeRestoreJob", "rest-json", uri={"RestoreJobId": "j"})) == [
        ("backup:DescribeRestoreJob", "*")]


def test_rds_identifiers_become_arns_and_the_global_cluster_has_no_region() -> None:
    form = b"Action=DescribeGlobalClusters&GlobalClusterIdentifier=records"
    assert requests(call("rds", "DescribeGlobalClusters", "query", body=form)) == [
        ("rds:DescribeGlobalClusters", f"arn:aws:rds::{ACCOUNT}:global-cluster:records")]
    form = b"Action=DeleteDBCluster&DBClusterIdentifier=scratch-1"
    assert requests(call("rds", "DeleteDBCluster", "query", body=form)) == [
        ("rds:DeleteDBCluster", f"arn:aws:rds:us-west-1:{ACCOUNT}:cluster:scratch-1")]


def test_a_kms_alias_is_authorized_on_its_key_with_its_aliases() -> None:
    mapped = Mapping(call("kms", "DescribeKey", "json", body=b'{"KeyId": "alias/data"}'), ACCOUNT, Estate())
    [request] = mapped.requests()
    assert (request.resource, request.context["kms:ResourceAliases"]) == (KEY, ["alias/data"])


def test_a_dynamodb_item_write_carries_its_partition_key_as_leading_keys() -> None:
    body = json.dumps({"TableName": "runbooks", "Item": {"pk": {"S": "gate#demo"}, "sk": {"S": "x"}}}).encode()
    [request] = Mapping(call("dynamodb", "PutItem", "json", body=body), ACCOUNT, Estate()).requests()
    assert request.resource == f"arn:aws:dynamodb:us-west-1:{ACCOUNT}:table/runbooks"
    assert request.context["dynamodb:LeadingKeys"] == ["gate#demo"]


def test_a_secret_named_by_name_is_authorized_on_its_arn() -> None:
    assert requests(call("secretsmanager", "GetSecretValue", "json", body=b'{"SecretId": "db"}')) == [
        ("secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:us-west-1:{ACCOUNT}:secret:db-AbCdEf")]


def test_retention_of_a_named_version_is_put_object_retention_itself() -> None:
    assert requests(call("s3", "PutObjectRetention", "rest-xml", query={"versionId": ["v1"], "retention": [""]},
                         uri={"Bucket": "charts", "Key": "p/1.pdf"})) == [
        ("s3:PutObjectRetention", "arn:aws:s3:::charts/p/1.pdf")]


def test_reading_a_backup_plan_is_authorized_on_the_plan() -> None:
    assert requests(call("backup", "GetBackupPlan", "rest-json", uri={"backupPlanId": "p-1"})) == [
        ("backup:GetBackupPlan", f"arn:aws:backup:us-west-1:{ACCOUNT}:backup-plan:p-1")]


def test_reading_a_schedule_is_authorized_on_the_schedule_of_the_default_group() -> None:
    assert requests(call("scheduler", "GetSchedule", "rest-json", uri={"Name": "ehr-dr-demo-restore-drill"})) == [
        ("scheduler:GetSchedule", f"arn:aws:scheduler:us-west-1:{ACCOUNT}:schedule/default/ehr-dr-demo-restore-drill")]


def test_simulating_a_principals_policies_is_authorized_on_that_principal() -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/ehr-dr-demo-dr-operator"
    assert requests(call("iam", "SimulatePrincipalPolicy", "query", query={
        "Action": ["SimulatePrincipalPolicy"], "PolicySourceArn": [role]})) == [("iam:SimulatePrincipalPolicy", role)]


def test_describing_named_alarms_is_authorized_on_each_alarm_and_on_every_alarm_without_names() -> None:
    named = json.dumps({"AlarmNames": ["gate-a", "gate-b"]}).encode()
    assert requests(call("monitoring", "DescribeAlarms", "json", body=named)) == [
        ("cloudwatch:DescribeAlarms", f"arn:aws:cloudwatch:us-west-1:{ACCOUNT}:alarm:gate-a"),
        ("cloudwatch:DescribeAlarms", f"arn:aws:cloudwatch:us-west-1:{ACCOUNT}:alarm:gate-b")]
    assert requests(call("monitoring", "DescribeAlarms", "json", body=b"{}")) == [
        ("cloudwatch:DescribeAlarms", f"arn:aws:cloudwatch:us-west-1:{ACCOUNT}:alarm:*")]
