"""The deployment config's region list is botocore's, read without boto3 (it is on every `cdk synth`'s path)."""

from __future__ import annotations

import subprocess
import sys

import boto3

from dr_runbooks.config import known_regions


def test_known_regions_are_botocores_s3_and_rds_regions() -> None:
    session = boto3.session.Session()
    expected = set(session.get_available_regions("s3")) | set(session.get_available_regions("rds"))
    assert known_regions() == expected


def test_known_regions_leave_out_endpoints_that_are_not_regions() -> None:
    assert "us-west-1" in known_regions()
    assert not {"aws-global", "s3-external-1", "fips-us-east-1"} & known_regions()


def test_validating_a_config_does_not_import_boto3() -> None:
    script = ("import sys; from dr_runbooks.config import DeploymentConfig; "
              "DeploymentConfig(env_name='demo', account='123456789012'); print('boto3' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
