"""The deployment config: what a platform engineer may put in cdk.json, and the one-line errors for what not."""

from pathlib import Path

import pytest

from dr_runbooks.config import ConfigError, DeploymentConfig

CDK_JSON = Path(__file__).parents[2] / "cdk.json"
VALID = {"env_name": "prod", "account": "210987654321"}


def problems_of(**overrides: object) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        DeploymentConfig.from_context({**VALID, **overrides})
    return raised.value.problems


def test_defaults_put_the_primary_in_virginia_and_dr_in_california():
    config = DeploymentConfig.from_context(VALID)
    assert config.regions == ("us-east-1", "us-west-1")


def test_defaults_keep_charts_seven_years_and_target_three_and_a_half_nines():
    config = DeploymentConfig.from_context(VALID)
    assert (config.retention_years, config.availability_target) == (7, 0.9995)


def test_monthly_downtime_budget_of_99_95_percent_is_21_9_minutes():
    assert round(DeploymentConfig.from_context(VALID).monthly_downtime_budget_minutes, 1) == 21.9


def test_command_line_strings_are_coerced_like_cdk_context_values():
    config = DeploymentConfig.from_context({**VALID, "retention_years": "10", "availability_target": "0.999"})
    assert (config.retention_years, config.availability_target) == (10, 0.999)


def test_the_repository_cdk_json_is_a_valid_config():
    assert DeploymentConfig.from_cdk_json(CDK_JSON).env_name == "demo"


@pytest.mark.parametrize(
    ("overrides", "starts_with"),
    [
        ({"dr_region": "us-east-1"}, "dr_region: must differ from primary_region"),
        ({"primary_region": "us-east-9"}, "primary_region: 'us-east-9' is not an AWS region"),
        ({"retention_years": "5"}, "retention_years:"),
        ({"backup_retention_days": "36"}, "backup_retention_days:"),
        ({"account": "1234"}, "account:"),
        ({"env_name": "Prod_1"}, "env_name:"),
        ({"availability_target": "1.5"}, "availability_target:"),
        ({"rto_minutes": "30"}, "rto_minutes: 30 min exceeds the whole monthly downtime budget"),
        ({"alarm_email": "oncall"}, "alarm_email:"),
        ({"hosted_zone_name": "example.com"}, "dr_endpoint: traffic management needs"),
    ],
)
def test_each_bad_value_is_one_line_naming_its_key(overrides, starts_with):
    problems = problems_of(**overrides)
    assert len(problems) == 1
    assert problems[0].startswith(starts_with)
    assert "\n" not in problems[0]


def test_every_violation_is_reported_at_once():
    assert len(problems_of(retention_years="5", account="x")) == 2


def test_missing_required_keys_are_named():
    with pytest.raises(ConfigError, match="env_name: Field required"):
        DeploymentConfig.from_context({"account": "210987654321"})


def test_an_unreadable_cdk_json_is_a_config_error(tmp_path):
    broken = tmp_path / "cdk.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read a CDK context"):
        DeploymentConfig.from_cdk_json(broken)
