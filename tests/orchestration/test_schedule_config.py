"""The schedule keys of the deployment config: defaults as the issue asks, and one clear line for each bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from dr_runbooks.config import ConfigError, DeploymentConfig

CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"


def config(**overrides: object) -> DeploymentConfig:
    return DeploymentConfig.from_cdk_json(CDK_JSON, overrides)


def test_drills_and_verification_are_scheduled_and_the_game_day_is_not_by_default() -> None:
    defaults = config()
    assert (defaults.restore_drill_enabled, defaults.verify_replication_enabled, defaults.game_day_enabled) == (
        True, True, False)


def test_the_retention_sync_is_scheduled_daily_by_default() -> None:
    defaults = config()
    assert defaults.retention_sync_enabled is True
    assert defaults.retention_sync_schedule.split()[2:5] == ["*", "*", "?"]  # every day of every month


def test_enablement_given_as_a_cdk_context_string_is_a_boolean() -> None:
    assert config(game_day_enabled="true").game_day_enabled is True


@pytest.mark.parametrize(("key", "value", "message"), [
    ("restore_drill_schedule", "weekly", "restore_drill_schedule: String should match pattern"),
    ("game_day_schedule", "cron(0 15 * * TUE *)",
     "game_day_schedule: exactly one of day-of-month and day-of-week must be '?'"),
    ("verify_replication_schedule", "cron(0 5 ? * ? *)",
     "verify_replication_schedule: exactly one of day-of-month and day-of-week must be '?'"),
    ("schedule_timezone", "Mars/Olympus", "schedule_timezone: 'Mars/Olympus' is not an IANA time zone"),
    ("game_day_enabled", "sometimes", "game_day_enabled: Input should be a valid boolean"),
    ("retention_sync_schedule", "cron(0 3 * * * *)",
     "retention_sync_schedule: exactly one of day-of-month and day-of-week must be '?'"),
])
def test_a_bad_schedule_value_is_one_line_naming_its_key(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config(**{key: value})
    assert raised.value.problems == [raised.value.problems[0]]
    assert raised.value.problems[0].startswith(message)
