"""What runbooks need in each region: the topology parameter, the state table, the evidence bucket."""

from __future__ import annotations

from aws_cdk import aws_ssm as ssm
from stack_assembly import Estate

from dr_runbooks.topology import Topology, parameter_name
from stacks.runbook_support import parameter_tier


def test_topology_parameter_in_each_region_equals_build_topology(estate: Estate, region: str) -> None:
    parameter = estate.only("runbooks", region, "AWS::SSM::Parameter")
    assert parameter["Name"] == parameter_name(estate.config.env_name)
    assert Topology.from_json(parameter["Value"]) == estate.topology


def test_state_table_has_the_runbook_key_schema(estate: Estate, region: str) -> None:
    table = estate.only("runbooks", region, "AWS::DynamoDB::Table")
    assert table["TableName"] == estate.topology.in_region(region).runbook_table
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert table["BillingMode"] == "PAY_PER_REQUEST"


def test_state_table_is_kms_encrypted_with_point_in_time_recovery(estate: Estate, region: str) -> None:
    table = estate.only("runbooks", region, "AWS::DynamoDB::Table")
    assert table["SSESpecification"]["SSEType"] == "KMS"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["DeletionProtectionEnabled"] is True


def test_evidence_bucket_keeps_evidence_six_years_in_compliance_mode(estate: Estate, region: str) -> None:
    (bucket,) = [b["Properties"] for b in estate.resources("runbooks", region, "AWS::S3::Bucket").values()]
    assert bucket["BucketName"] == estate.topology.in_region(region).evidence_bucket
    retention = bucket["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert retention["Mode"] == "COMPLIANCE" and retention["Days"] >= 6 * 365
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert "LoggingConfiguration" in bucket


def test_topology_parameter_tier_follows_its_size(estate: Estate, region: str) -> None:
    parameter = estate.only("runbooks", region, "AWS::SSM::Parameter")
    assert parameter["Tier"] == ("Advanced" if len(parameter["Value"].encode()) > 4096 else "Standard")


def test_a_topology_over_4_kb_gets_the_advanced_tier() -> None:
    assert parameter_tier("x" * 4096) == ssm.ParameterTier.STANDARD
    assert parameter_tier("x" * 4097) == ssm.ParameterTier.ADVANCED
