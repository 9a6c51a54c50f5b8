"""The provisioned estate: every name of the topology, in both regions, with the settings the stacks deploy."""

from __future__ import annotations

import json

import pytest

from dr_runbooks.topology import Topology, parameter_name
from ehr_dr_sandbox.api import Sandbox
from ehr_dr_sandbox.provision import retention_days

REGIONS = ("us-east-1", "us-west-1")


@pytest.mark.parametrize("region", REGIONS)
def test_the_topology_is_published_in_each_region(sandbox: Sandbox, region):
    value = sandbox.client("ssm", region).get_parameter(Name=parameter_name(sandbox.config.env_name))
    assert Topology.from_json(value["Parameter"]["Value"]) == sandbox.topology


@pytest.mark.parametrize("region", REGIONS)
def test_chart_buckets_are_versioned_locked_encrypted_and_replicate_to_the_partner(sandbox: Sandbox, region):
    here = sandbox.topology.regions[region]
    partner = sandbox.topology.regions[sandbox.topology.partner(region)]
    s3 = sandbox.client("s3", region)
    assert s3.get_bucket_versioning(Bucket=here.chart_bucket)["Status"] == "Enabled"
    lock = s3.get_object_lock_configuration(Bucket=here.chart_bucket)["ObjectLockConfiguration"]
    retention = lock["Rule"]["DefaultRetention"]  # moto adds "Years": 0 beside the Days it was given
    assert (retention["Mode"], retention["Days"]) == ("COMPLIANCE", retention_days(sandbox.config.retention_years))
    encryption = s3.get_bucket_encryption(Bucket=here.chart_bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    key = sandbox.client("kms", region).describe_key(KeyId=here.kms_key_alias)["KeyMetadata"]["Arn"]
    assert encryption["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}
    rule = s3.get_bucket_replication(Bucket=here.chart_bucket)["ReplicationConfiguration"]["Rules"][0]
    assert rule["ID"] == f"charts-{region}-to-{partner.region}"
    assert rule["Destination"]["Bucket"] == f"arn:aws:s3:::{partner.chart_bucket}"
    assert rule["Destination"]["ReplicationTime"] == {"Status": "Enabled", "Time": {"Minutes": 15}}
    assert rule["DeleteMarkerReplication"] == {"Status": "Enabled"}


@pytest.mark.parametrize("region", REGIONS)
def test_each_region_has_its_runbook_table_topic_vault_alarms_and_secret(sandbox: Sandbox, region):
    here = sandbox.topology.regions[region]
    table = sandbox.client("dynamodb", region).describe_table(TableName=here.runbook_table)["Table"]
    assert {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]} == {"pk": "S", "sk": "S"}
    topics = [t["TopicArn"] for t in sandbox.client("sns", region).list_topics()["Topics"]]
    assert here.oncall_topic_arn in topics
    assert sandbox.client("backup", region).describe_backup_vault(BackupVaultName=here.backup_vault)
    alarms = sandbox.client("cloudwatch", region).describe_alarms(AlarmNames=list(here.alarm_names))
    assert sorted(a["AlarmName"] for a in alarms["MetricAlarms"]) == sorted(here.alarm_names)
    secret = sandbox.client("secretsmanager", region).get_secret_value(SecretId=sandbox.topology.db_secret_name)
    assert json.loads(secret["SecretString"])["dbname"] == sandbox.topology.database_name


@pytest.mark.parametrize("bucket_kind", ["evidence_bucket", "access_log_bucket"])
@pytest.mark.parametrize("region", REGIONS)
def test_evidence_and_access_log_buckets_exist_versioned(sandbox: Sandbox, region, bucket_kind):
    bucket = getattr(sandbox.topology.regions[region], bucket_kind)
    assert sandbox.client("s3", region).get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"


def test_the_global_cluster_has_the_writer_in_the_primary_and_the_secondary_in_dr(sandbox: Sandbox):
    topology = sandbox.topology
    clusters = sandbox.client("rds", topology.primary_region).describe_global_clusters(
        GlobalClusterIdentifier=topology.global_cluster_id)["GlobalClusters"][0]["GlobalClusterMembers"]
    writers = {m["DBClusterArn"].split(":")[3]: m["IsWriter"] for m in clusters}
    assert writers == {topology.primary_region: True, topology.dr_region: False}
    for region, here in topology.regions.items():
        cluster = sandbox.client("rds", region).describe_db_clusters(DBClusterIdentifier=here.db_cluster_id)
        assert cluster["DBClusters"][0]["DBClusterIdentifier"] == here.db_cluster_id


def test_traffic_has_a_health_checked_failover_record_per_region(sandbox: Sandbox):
    traffic = sandbox.topology.traffic
    route53 = sandbox.client("route53")
    zone = route53.list_hosted_zones_by_name(DNSName=traffic.hosted_zone_name)["HostedZones"][0]["Id"]
    records = [r for r in route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
               if r.get("Failover")]
    assert {r["Failover"]: r["ResourceRecords"][0]["Value"] for r in records} == {
        "PRIMARY": traffic.endpoints["us-east-1"], "SECONDARY": traffic.endpoints["us-west-1"]}
    assert all(r.get("HealthCheckId") for r in records)
    for gate in traffic.gates.values():
        alarms = sandbox.client("cloudwatch", gate.alarm_region).describe_alarms(AlarmNames=[gate.alarm_name])
        assert alarms["MetricAlarms"][0]["TreatMissingData"] == "ignore"
