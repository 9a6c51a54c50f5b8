"""The records database: an Aurora PostgreSQL Global Database, encrypted, protected, TLS-only, IAM-authenticated."""

from __future__ import annotations

from typing import Any

from stack_assembly import Estate


def _cluster(estate: Estate, region: str) -> dict[str, Any]:
    return estate.only("database", region, "AWS::RDS::DBCluster")


def test_global_cluster_is_made_from_the_primary_cluster(estate: Estate) -> None:
    primary = estate.config.primary_region
    global_cluster = estate.only("database", primary, "AWS::RDS::GlobalCluster")
    assert global_cluster["GlobalClusterIdentifier"] == estate.topology.global_cluster_id
    assert global_cluster["DeletionProtection"] is True
    assert "SourceDBClusterIdentifier" in global_cluster


def test_secondary_joins_the_global_cluster_without_credentials(estate: Estate) -> None:
    secondary = _cluster(estate, estate.config.dr_region)
    assert secondary["GlobalClusterIdentifier"] == estate.topology.global_cluster_id
    assert "MasterUsername" not in secondary
    assert "MasterUserPassword" not in secondary


def test_cluster_ids_are_the_topology_ids(estate: Estate, region: str) -> None:
    assert _cluster(estate, region)["DBClusterIdentifier"] == estate.topology.in_region(region).db_cluster_id


def test_cluster_storage_is_encrypted_with_the_regions_key(estate: Estate, region: str) -> None:
    cluster = _cluster(estate, region)
    assert cluster["StorageEncrypted"] is True
    assert "keys" in str(cluster["KmsKeyId"])  # imported from the same region's keys stack


def test_cluster_has_deletion_protection(estate: Estate, region: str) -> None:
    assert _cluster(estate, region)["DeletionProtection"] is True


def test_cluster_keeps_backups_for_the_configured_days(estate: Estate, region: str) -> None:
    assert _cluster(estate, region)["BackupRetentionPeriod"] == estate.config.backup_retention_days


def test_cluster_uses_iam_authentication_and_exports_its_log(estate: Estate, region: str) -> None:
    cluster = _cluster(estate, region)
    assert cluster["EnableIAMDatabaseAuthentication"] is True
    assert cluster["EnableCloudwatchLogsExports"] == ["postgresql"]


def test_cluster_forces_tls(estate: Estate, region: str) -> None:
    group = estate.only("database", region, "AWS::RDS::DBClusterParameterGroup")
    assert group["Parameters"]["rds.force_ssl"] == "1"


def test_instances_have_enhanced_monitoring_and_no_public_access(estate: Estate, region: str) -> None:
    instances = estate.resources("database", region, "AWS::RDS::DBInstance").values()
    assert instances
    for instance in instances:
        assert instance["Properties"]["MonitoringInterval"] > 0
        assert instance["Properties"].get("PubliclyAccessible", False) is False


def test_admin_secret_is_named_by_topology_encrypted_and_replicated_to_dr(estate: Estate) -> None:
    secret = estate.only("database", estate.config.primary_region, "AWS::SecretsManager::Secret")
    assert secret["Name"] == estate.topology.db_secret_name
    assert "KmsKeyId" in secret
    (replica,) = secret["ReplicaRegions"]
    dr = estate.config.dr_region
    assert replica["Region"] == dr
    alias = estate.topology.in_region(dr).kms_key_alias
    assert replica["KmsKeyId"] == f"arn:aws:kms:{dr}:{estate.config.account}:{alias}"


def test_admin_secret_rotates(estate: Estate) -> None:
    schedule = estate.only("database", estate.config.primary_region, "AWS::SecretsManager::RotationSchedule")
    assert schedule["RotationRules"]["ScheduleExpression"] == "rate(30 days)"


def test_vpc_has_flow_logs_and_only_isolated_subnets(estate: Estate, region: str) -> None:
    flow_log = estate.only("database", region, "AWS::EC2::FlowLog")
    assert flow_log["TrafficType"] == "ALL"
    assert not estate.resources("database", region, "AWS::EC2::InternetGateway")
    assert not estate.resources("database", region, "AWS::EC2::NatGateway")
