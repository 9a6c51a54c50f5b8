"""Clients, MFA sessions, call recording and run ids."""

from __future__ import annotations

import pytest

from dr_runbooks.engine import calls
from dr_runbooks.engine.journal import region_of_run
from dr_runbooks.session import AwsSession, MfaRequired

SERIAL = "arn:aws:iam::123456789012:mfa/oncall"


def test_a_plain_session_refuses_to_change_anything(aws: AwsSession) -> None:
    with pytest.raises(MfaRequired, match="drctl failover changes the estate and needs an MFA session"):
        aws.require_mfa("drctl failover")


def test_an_mfa_session_token_makes_an_mfa_session(aws: AwsSession) -> None:
    session = aws.with_mfa(SERIAL, "123456", "us-west-1")
    assert session.mfa is True
    session.require_mfa("drctl failover")


def test_assuming_the_operator_role_with_mfa_runs_as_that_role(aws: AwsSession) -> None:
    role = aws.client("iam", "us-east-1").create_role(
        RoleName="ehr-dr-test-dr-operator", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    session = aws.with_mfa(SERIAL, "123456", "us-west-1", role_arn=role)
    assert ":assumed-role/ehr-dr-test-dr-operator/drctl" in session.identity("us-west-1").arn


def test_clients_are_made_once_per_service_and_region(aws: AwsSession) -> None:
    assert aws.client("s3", "us-west-1") is aws.client("s3", "us-west-1")
    assert aws.client("s3", "us-west-1") is not aws.client("s3", "us-east-1")


def test_calls_are_recorded_with_their_region_and_without_bodies(aws: AwsSession) -> None:
    s3 = aws.client("s3", "us-west-1")
    recorder = calls.Recorder()
    with calls.recording(recorder):
        s3.create_bucket(Bucket="charts-test", CreateBucketConfiguration={"LocationConstraint": "us-west-1"})
        s3.put_object(Bucket="charts-test", Key="charts/p/1.pdf", Body=b"PHI")
    put = recorder.calls[1]
    assert (put.service, put.operation, put.region) == ("s3", "PutObject", "us-west-1")
    assert put.params["Body"] == "<redacted>"
    assert put.params["Key"] == "charts/p/1.pdf"


def test_a_recorder_passes_what_it_records_to_its_parent(aws: AwsSession) -> None:
    run = calls.Recorder()
    with calls.recording(run):
        step = calls.Recorder(parent=calls.current())
        with calls.recording(step):
            aws.client("s3", "us-east-1").list_buckets()
    assert run.call_count == step.call_count == 1


def test_busy_time_counts_overlapping_intervals_once() -> None:
    assert calls.busy_seconds([(0.0, 2.0), (1.0, 3.0), (5.0, 6.0)]) == pytest.approx(4.0)


def test_a_run_id_names_the_region_of_its_journal() -> None:
    assert region_of_run("20261122T031500Z-failover-us-west-1-3fa2c1") == "us-west-1"


def test_a_malformed_run_id_is_refused_with_an_example() -> None:
    with pytest.raises(ValueError, match=r"'42' is not a run id \(expected e\.g\. 2026"):
        region_of_run("42")
