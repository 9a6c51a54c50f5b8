"""AWS Backup: locked vaults in both regions, a plan per region copying every rule to the partner vault."""

from __future__ import annotations

from typing import Any

from stack_assembly import Estate


def _rules(estate: Estate, region: str) -> list[dict[str, Any]]:
    return estate.only("backup", region, "AWS::Backup::BackupPlan")["BackupPlan"]["BackupPlanRule"]


def test_vault_is_named_by_topology_and_encrypted_with_the_regions_key(estate: Estate, region: str) -> None:
    vault = estate.only("backup", region, "AWS::Backup::BackupVault")
    assert vault["BackupVaultName"] == estate.topology.in_region(region).backup_vault
    assert "keys" in str(vault["EncryptionKeyArn"])


def test_vault_lock_is_compliance_mode(estate: Estate, region: str) -> None:
    lock = estate.only("backup", region, "AWS::Backup::BackupVault")["LockConfiguration"]
    assert lock["ChangeableForDays"] >= 3  # a grace period then immutable: compliance mode
    assert lock["MinRetentionDays"] <= min(rule["Lifecycle"]["DeleteAfterDays"] for rule in _rules(estate, region))


def test_plan_has_continuous_hourly_and_daily_rules(estate: Estate, region: str) -> None:
    rules = {rule["RuleName"]: rule for rule in _rules(estate, region)}
    assert rules["continuous"]["EnableContinuousBackup"] is True
    assert rules["continuous"]["Lifecycle"]["DeleteAfterDays"] == estate.config.backup_retention_days
    assert rules["hourly"]["ScheduleExpression"] == "cron(0 * * * ? *)"
    assert set(rules) == {"continuous", "hourly", "daily"}


def test_every_rule_copies_to_the_partner_vault(estate: Estate, region: str) -> None:
    partner = estate.topology.partner(region)
    vault = estate.topology.in_region(partner).backup_vault
    expected = f"arn:aws:backup:{partner}:{estate.config.account}:backup-vault:{vault}"
    for rule in _rules(estate, region):
        (copy,) = rule["CopyActions"]
        assert copy["DestinationBackupVaultArn"] == expected


def test_selection_covers_the_cluster_charts_evidence_and_state_table(estate: Estate, region: str) -> None:
    selection = estate.only("backup", region, "AWS::Backup::BackupSelection")["BackupSelection"]
    here, account = estate.topology.in_region(region), estate.config.account
    assert set(selection["Resources"]) == {
        f"arn:aws:rds:{region}:{account}:cluster:{here.db_cluster_id}",
        f"arn:aws:s3:::{here.chart_bucket}",
        f"arn:aws:s3:::{here.evidence_bucket}",
        f"arn:aws:dynamodb:{region}:{account}:table/{here.runbook_table}",
    }


def test_backup_role_is_the_topology_role_drills_pass(estate: Estate, region: str) -> None:
    roles = [r["Properties"] for r in estate.resources("backup", region, "AWS::IAM::Role").values()]
    assert [f"arn:aws:iam::{estate.config.account}:role/{role['RoleName']}" for role in roles] == [
        estate.topology.in_region(region).backup_role_arn
    ]
