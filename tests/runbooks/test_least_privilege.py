"""The sandbox enforces the stacks' IAM: the on-call engineer's runbooks work under the dr-operator role, and what the
role does not grant is denied, as AWS would, naming the action and the resource."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner, Result

from dr_runbooks.cli import cli
from dr_runbooks.observe import probes
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import role_name
from ehr_dr_sandbox.api import Sandbox

from .conftest import MFA, report_lag

SERIAL = "arn:aws:iam::123456789012:mfa/oncall"


def operator_arn(sandbox: Sandbox) -> str:
    return f"arn:aws:iam::{sandbox.config.account}:role/{role_name(sandbox.config, 'dr-operator')}"


def operator_credentials(sandbox: Sandbox) -> dict[str, str]:
    """The dr-operator role's credentials, assumed with MFA as an on-call engineer does."""
    return sandbox.client("sts").assume_role(RoleArn=operator_arn(sandbox), RoleSessionName="oncall",
                                             SerialNumber=SERIAL, TokenCode="123456")["Credentials"]


def operator(sandbox: Sandbox) -> AwsSession:
    return AwsSession.from_credentials(operator_credentials(sandbox), endpoint_url=sandbox.endpoint_url)


def denials(sandbox: Sandbox) -> list[dict[str, str]]:
    return sandbox.status()["iam"]["denials"]


@pytest.fixture
def without_statement(sandbox: Sandbox) -> Iterator[Callable[[str], None]]:
    """Remove one statement (by Sid) from the operator's policies, as a drifted account would; put it back after."""
    iam = sandbox.client("iam")
    attached = iam.list_attached_role_policies(RoleName=role_name(sandbox.config, "dr-operator"))["AttachedPolicies"]
    originals = {policy["PolicyArn"]: iam.get_policy(PolicyArn=policy["PolicyArn"])["Policy"]["DefaultVersionId"]
                 for policy in attached}

    def remove(sid: str) -> None:
        for arn, version in originals.items():
            document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
            document = json.loads(document) if isinstance(document, str) else document
            kept = [s for s in document["Statement"] if s.get("Sid") != sid]
            if len(kept) < len(document["Statement"]):
                iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps({**document, "Statement": kept}),
                                          SetAsDefault=True)
                return
        raise AssertionError(f"no statement {sid} in the operator's policies")

    yield remove
    for arn, version in originals.items():
        iam.set_default_policy_version(PolicyArn=arn, VersionId=version)
        for listed in iam.list_policy_versions(PolicyArn=arn)["Versions"]:
            if listed["VersionId"] != version:
                iam.delete_policy_version(PolicyArn=arn, VersionId=listed["VersionId"])


def test_the_operator_role_is_refused_without_mfa(sandbox: Sandbox) -> None:
    with pytest.raises(ClientError, match=r"AccessDenied.*requires MFA"):
        sandbox.client("sts").assume_role(RoleArn=operator_arn(sandbox), RoleSessionName="oncall")


def test_a_call_the_operator_is_not_granted_is_denied_naming_action_and_resource(sandbox: Sandbox) -> None:
    s3 = operator(sandbox).client("s3", "us-west-1")
    with pytest.raises(ClientError) as denied:
        s3.delete_bucket(Bucket=sandbox.topology.in_region("us-west-1").chart_bucket)
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert "is not authorized to perform: s3:DeleteBucket on resource: arn:aws:s3:::" in str(denied.value)
    assert denials(sandbox)[-1]["action"] == "s3:DeleteBucket"


def test_the_operator_reads_the_topology_it_is_granted(sandbox: Sandbox) -> None:
    ssm = operator(sandbox).client("ssm", "us-west-1")
    assert ssm.get_parameter(Name=f"/ehr-dr/{sandbox.config.env_name}/topology")["Parameter"]["Value"]


def test_a_gate_metric_outside_the_traffic_namespace_is_denied_by_its_condition(sandbox: Sandbox) -> None:
    cloudwatch = operator(sandbox).client("cloudwatch", "us-west-1")
    with pytest.raises(ClientError, match="cloudwatch:PutMetricData"):
        cloudwatch.put_metric_data(Namespace="Elsewhere", MetricData=[{"MetricName": "x", "Value": 1.0}])


def test_the_policy_simulator_answers_as_the_enforcement_does(sandbox: Sandbox) -> None:
    results = sandbox.client("iam").simulate_principal_policy(
        PolicySourceArn=operator_arn(sandbox), ActionNames=["s3:DeleteBucket", "ssm:GetParameter"],
        ResourceArns=[f"arn:aws:ssm:us-west-1:{sandbox.config.account}:parameter/ehr-dr/"
                      f"{sandbox.config.env_name}/topology"])["EvaluationResults"]
    assert {r["EvalActionName"]: r["EvalDecision"] for r in results} == {
        "s3:DeleteBucket": "implicitDeny", "ssm:GetParameter": "allowed"}


def test_simulating_a_role_that_does_not_exist_is_no_such_entity(sandbox: Sandbox) -> None:
    with pytest.raises(ClientError, match="NoSuchEntity"):
        sandbox.client("iam").simulate_principal_policy(
            PolicySourceArn=f"arn:aws:iam::{sandbox.config.account}:role/nobody", ActionNames=["s3:GetObject"])


def test_a_function_role_is_assumed_by_its_service_only(sandbox: Sandbox) -> None:
    role = f"ehr-dr-{sandbox.config.env_name}-runbooks-us-west-1"
    with pytest.raises(Exception, match="cannot assume"):
        sandbox.role_credentials(role, service="states.amazonaws.com")
    function = sandbox.role_session(role)
    rds = function.client("rds", "us-west-1")
    assert probes.global_cluster(rds, sandbox.topology.global_cluster_id).writer() is not None


def test_a_switchover_fails_naming_the_permission_the_operator_lost(
    drctl: Callable[..., Result], sandbox: Sandbox, without_statement: Callable[[str], None]
) -> None:
    rds = sandbox.client("rds", "us-west-1")
    writer = probes.global_cluster(rds, sandbox.topology.global_cluster_id).writer()
    assert writer is not None
    for region in sandbox.topology.regions:
        report_lag(sandbox, region, 1.0)
    without_statement("FailOverTheGlobalDatabase")
    result = drctl("switchover", "--to", sandbox.topology.partner(writer.region), "--yes", *MFA)
    assert result.exit_code != 0
    assert "rds:" in result.output and "not authorized" in result.output
    assert probes.global_cluster(rds, sandbox.topology.global_cluster_id).writer().region == writer.region


@pytest.fixture(scope="module")
def seeded(sandbox: Sandbox) -> Sandbox:
    sandbox.seed(patients=5, files_per_patient=2)
    sandbox.action("replication-drain", timeout=60)
    return sandbox


@pytest.mark.parametrize("command", [
    ("status",), ("verify", "replication"), ("verify", "charts", "--all"), ("backup", "--timeout", "120")],
    ids=lambda command: " ".join(command[:2]))
def test_a_command_that_needs_no_mfa_code_works_from_an_operator_session(
    seeded: Sandbox, sandbox_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...]
) -> None:
    """An engineer whose profile assumes the dr-operator role (with MFA) runs the read and backup commands with it."""
    monkeypatch.chdir(tmp_path)
    credentials = operator_credentials(seeded)
    env = {**sandbox_env, "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
           "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"], "AWS_SESSION_TOKEN": credentials["SessionToken"]}
    before = seeded.status()["iam"]["denied"]
    result = CliRunner().invoke(cli, [*command, "--output", "json"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert seeded.status()["iam"]["denied"] == before, denials(seeded)[-3:]
