"""The orchestration stack of each region, synthesized with the whole estate (the compliance packs run in that synth,
so a finding fails every test here): state machines as generated from the plans, logging, tracing, least privilege,
schedules (the drills in the DR region, the retention sync in both), alarms to on-call, and the Lambda asset."""

from __future__ import annotations

import os

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import json
import shutil
import ssl
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dr_runbooks.config import DeploymentConfig
from dr_runbooks.orchestration.catalog import RUNBOOKS, deployed_in
from dr_runbooks.orchestration.definition import definition
from dr_runbooks.topology import (
    Topology,
    build_topology,
    database_function_name,
    evaluation_schedule_name,
    heartbeat_schedule_name,
    runbook_function_name,
    state_machine_arn,
    state_machine_name,
)
from stacks import lambda_asset
from stacks.app import build_app, cdk_json_context

FUNCTION_ARN = "<function-arn>"


class Synth:
    def __init__(self, outdir: Path, context: dict[str, Any]) -> None:
        self.outdir = outdir
        self.config = DeploymentConfig.from_context(context)
        self.topology: Topology = build_topology(self.config)

    def template(self, region: str) -> dict[str, Any]:
        name = f"ehr-dr-{self.config.env_name}-orchestration-{region}.template.json"
        return json.loads((self.outdir / name).read_text())

    def resources(self, region: str, kind: str) -> dict[str, dict[str, Any]]:
        return {lid: res for lid, res in self.template(region)["Resources"].items() if res["Type"] == kind}

    def function(self, region: str, name: str) -> tuple[str, dict[str, Any]]:
        (found,) = [(lid, res) for lid, res in self.resources(region, "AWS::Lambda::Function").items()
                    if res["Properties"]["FunctionName"] == name]
        return found

    def runbook_function_id(self, region: str) -> str:
        return self.function(region, runbook_function_name(self.config.env_name))[0]

    def runbooks_in(self, region: str) -> list[str]:
        return sorted(deployed_in(region, self.config.dr_region))


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    outdir = tmp_path_factory.mktemp("cdk.out")
    context = cdk_json_context()
    build_app(context, outdir=str(outdir)).synth()
    yield Synth(outdir, context)


REGIONS = pytest.mark.parametrize("region", ["us-east-1", "us-west-1"])


def _resolve(value: Any, function_id: str) -> Any:
    """A definition string as CloudFormation would build it, the function's ARN token replaced by a marker."""
    if isinstance(value, dict) and "Fn::Join" in value:
        return "".join(_resolve(part, function_id) for part in value["Fn::Join"][1])
    if isinstance(value, dict) and value.get("Fn::GetAtt") == [function_id, "Arn"]:
        return FUNCTION_ARN
    assert isinstance(value, str), value
    return value


def machines(synth: Synth, region: str) -> dict[str, dict[str, Any]]:
    function_id = synth.runbook_function_id(region)
    return {res["Properties"]["StateMachineName"]: {
        **res["Properties"], "Definition": json.loads(_resolve(res["Properties"]["DefinitionString"], function_id))}
        for res in synth.resources(region, "AWS::StepFunctions::StateMachine").values()}


@REGIONS
def test_each_runbook_has_its_generated_state_machine_in_each_region(synth: Synth, region: str) -> None:
    found = machines(synth, region)
    children = {name: state_machine_arn(synth.topology, region, name) for name in RUNBOOKS}
    assert {name: machine["Definition"] for name, machine in found.items()} == {
        state_machine_name(synth.config.env_name, runbook): definition(RUNBOOKS[runbook].plan(), FUNCTION_ARN,
                                                                       children)
        for runbook in synth.runbooks_in(region)}


def test_the_drills_have_state_machines_in_the_dr_region_only(synth: Synth) -> None:
    assert set(synth.runbooks_in("us-west-1")) == set(RUNBOOKS)
    assert set(synth.runbooks_in("us-west-1")) - set(synth.runbooks_in("us-east-1")) == {
        name for name, runbook in RUNBOOKS.items() if runbook.deployed == "dr"}


@REGIONS
def test_every_state_machine_logs_all_with_execution_data_to_a_kms_log_group_and_traces(synth: Synth,
                                                                                         region: str) -> None:
    log_groups = synth.resources(region, "AWS::Logs::LogGroup")
    for machine in machines(synth, region).values():
        assert machine["TracingConfiguration"] == {"Enabled": True}
        logging = machine["LoggingConfiguration"]
        assert (logging["Level"], logging["IncludeExecutionData"]) == ("ALL", True)
        (group_id,) = [logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]]
        assert "KmsKeyId" in log_groups[group_id]["Properties"]


def statements(synth: Synth, region: str, policy_id_start: str) -> list[dict[str, Any]]:
    """Every statement of a role's policy, whichever of its parts holds it (stacks/managed_policies.py splits a
    policy under IAM's size quota into `<label>`, `<label>Part2`, ...)."""
    parts = [res for lid, res in synth.resources(region, "AWS::IAM::ManagedPolicy").items()
             if lid.startswith(policy_id_start)]
    assert parts, f"no policy {policy_id_start} in {region}"
    return [statement for part in parts for statement in part["Properties"]["PolicyDocument"]["Statement"]]


@REGIONS
def test_roles_have_no_inline_policies(synth: Synth, region: str) -> None:
    assert synth.resources(region, "AWS::IAM::Policy") == {}


@REGIONS
def test_the_state_machines_may_invoke_only_the_runbook_function(synth: Synth, region: str) -> None:
    function_id = synth.runbook_function_id(region)
    invoke = [s for s in statements(synth, region, "StateMachinePolicy") if "lambda:InvokeFunction" in str(s)]
    assert invoke == [{"Action": "lambda:InvokeFunction", "Effect": "Allow",
                       "Resource": {"Fn::GetAtt": [function_id, "Arn"]}, "Sid": "InvokeRunbookFunction"}]


@REGIONS
def test_the_runbook_function_writes_journal_lock_evidence_and_on_call_only_in_the_estates_own(
    synth: Synth, region: str
) -> None:
    by_sid = {s["Sid"]: s for s in statements(synth, region, "FunctionPolicy")}
    both = [synth.topology.in_region(r) for r in synth.config.regions]
    assert by_sid["JournalAndLock"]["Resource"] == [
        f"arn:aws:dynamodb:{r.region}:123456789012:table/{r.runbook_table}" for r in both]
    assert by_sid["Evidence"]["Resource"] == [arn for r in both for arn in (
        f"arn:aws:s3:::{r.evidence_bucket}", f"arn:aws:s3:::{r.evidence_bucket}/*")]
    assert by_sid["ReadTopology"]["Resource"].startswith(f"arn:aws:ssm:{region}:")
    assert by_sid["OnCall"]["Resource"] == [r.oncall_topic_arn for r in both]


@REGIONS
def test_the_runbook_function_keeps_only_the_estates_failover_snapshots_encrypted_through_rds(
    synth: Synth, region: str
) -> None:
    by_sid = {s["Sid"]: s for s in statements(synth, region, "FunctionPolicy")}
    account, env = synth.config.account, synth.config.env_name
    assert sorted(by_sid["KeepFailoverSnapshots"]["Action"]) == [
        "rds:AddTagsToResource", "rds:CopyDBClusterSnapshot", "rds:DescribeDBClusterSnapshots"]
    assert by_sid["KeepFailoverSnapshots"]["Resource"] == [arn for r in synth.config.regions for arn in (
        f"arn:aws:rds:{r}:{account}:cluster-snapshot:rds:unplanned-global-failover-"
        f"{synth.topology.in_region(r).db_cluster_id}-*",
        f"arn:aws:rds:{r}:{account}:cluster-snapshot:ehr-dr-{env}-lost-writes-*")]
    assert by_sid["EncryptKeptSnapshots"]["Condition"]["StringLike"] == {"kms:ViaService": "rds.*.amazonaws.com"}


@REGIONS
def test_the_runbook_function_reads_no_database_secret_and_no_chart(synth: Synth, region: str) -> None:
    secrets = {action for s in statements(synth, region, "FunctionPolicy") for action in
               ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]) if action.startswith("secretsmanager:")}
    assert secrets <= {"secretsmanager:DescribeSecret"}  # the readiness evaluation: is it there (no value)
    chart_objects = [resource for s in statements(synth, region, "FunctionPolicy") if "s3:GetObject" in s["Action"]
                     for resource in s["Resource"] if "-charts-" in str(resource) and "/" in str(resource)]
    assert chart_objects and all(str(resource).endswith("/dr-canary/*") for resource in chart_objects)


@REGIONS
def test_only_the_database_function_is_in_the_records_vpc(synth: Synth, region: str) -> None:
    _, runbook_function = synth.function(region, runbook_function_name(synth.config.env_name))
    _, database_function = synth.function(region, database_function_name(synth.config.env_name))
    assert "VpcConfig" not in runbook_function["Properties"]
    assert database_function["Properties"]["VpcConfig"]["SubnetIds"]


@REGIONS
def test_the_database_function_verifies_auroras_certificate_against_the_rds_authorities_of_its_region(
    synth: Synth, region: str
) -> None:
    _, function = synth.function(region, database_function_name(synth.config.env_name))
    bundle = function["Properties"]["Environment"]["Variables"]["PGSSLROOTCERT"]
    authorities = ssl.create_default_context(cafile=str(asset_of(synth, region) / bundle.removeprefix("/var/task/")))
    names = {dict(field[0] for field in ca["subject"])["commonName"] for ca in authorities.get_ca_certs()}
    assert {f"Amazon RDS {region} Root CA RSA2048 G1", f"Amazon RDS {region} Root CA ECC384 G1"} <= names


@REGIONS
def test_the_runbook_function_may_invoke_the_database_function_of_either_region(synth: Synth, region: str) -> None:
    by_sid = {s["Sid"]: s for s in statements(synth, region, "FunctionPolicy")}
    assert by_sid["DatabaseSteps"] == {"Sid": "DatabaseSteps", "Effect": "Allow", "Action": "lambda:InvokeFunction",
                                       "Resource": [f"arn:aws:lambda:{r}:123456789012:function:"
                                                    f"{database_function_name(synth.config.env_name)}"
                                                    for r in synth.config.regions]}


@REGIONS
def test_the_database_function_writes_only_the_heartbeat_object_and_sync_manifests_and_reads_only_its_own_secret(
        synth: Synth, region: str) -> None:
    found = statements(synth, region, "DatabaseFunctionPolicy")
    actions = {action for s in found for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    writes = {a for a in actions if a.split(":")[1].startswith(("Put", "Delete", "Update", "Switchover", "Failover"))}
    assert writes <= {"logs:PutLogEvents", "xray:PutTraceSegments", "xray:PutTelemetryRecords",
                      "ec2:DeleteNetworkInterface", "s3:PutObject"}
    here = synth.topology.in_region(region)
    puts = [s["Resource"] for s in found if "s3:PutObject" in s["Action"]]
    assert sorted(puts) == sorted([f"arn:aws:s3:::{here.chart_bucket}/dr-heartbeat/*",
                                   f"arn:aws:s3:::{here.evidence_bucket}/lifecycle/moved/*"])
    (secret,) = [s for s in found if s["Sid"] == "DatabaseSecret"]
    assert secret["Resource"].startswith(f"arn:aws:secretsmanager:{region}:")


@REGIONS
def test_no_statement_allows_every_action_of_a_service(synth: Synth, region: str) -> None:
    for prefix in ("FunctionPolicy", "DatabaseFunctionPolicy", "StateMachinePolicy"):
        for statement in statements(synth, region, prefix):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not [action for action in actions if action.endswith(":*") or action == "*"], statement


@REGIONS
def test_a_failed_execution_of_any_runbook_alarms_the_on_call_topic(synth: Synth, region: str) -> None:
    alarms = [res["Properties"] for res in synth.resources(region, "AWS::CloudWatch::Alarm").values()
              if res["Properties"]["AlarmName"] != "ehr-dr-demo-not-ready"]
    assert sorted(alarm["AlarmName"] for alarm in alarms) == sorted(
        f"ehr-dr-demo-runbook-failed-{runbook}" for runbook in synth.runbooks_in(region))
    for alarm in alarms:
        assert (alarm["MetricName"], alarm["Namespace"], alarm["Threshold"]) == ("ExecutionsFailed", "AWS/States", 0)
        assert alarm["AlarmActions"] == [synth.topology.in_region(region).oncall_topic_arn]


@REGIONS
def test_the_runbook_function_may_read_and_extend_only_the_retention_of_chart_versions(synth: Synth,
                                                                                       region: str) -> None:
    by_sid = {s["Sid"]: s for s in statements(synth, region, "FunctionPolicy")}
    buckets = [synth.topology.in_region(r).chart_bucket for r in synth.config.regions]
    assert by_sid["RetentionSyncCharts"]["Action"] == ["s3:GetObjectRetention", "s3:PutObjectRetention"]
    assert by_sid["RetentionSyncCharts"]["Resource"] == [f"arn:aws:s3:::{bucket}/charts/*" for bucket in buckets]
    assert by_sid["RetentionSyncVersions"]["Action"] == "s3:ListBucketVersions"
    assert by_sid["RetentionSyncVersions"]["Resource"] == [f"arn:aws:s3:::{bucket}" for bucket in buckets]


def drill_schedules(synth: Synth, region: str) -> dict[str, dict[str, Any]]:
    others = (heartbeat_schedule_name(synth.config.env_name), evaluation_schedule_name(synth.config.env_name),
              state_machine_name(synth.config.env_name, SYNC))
    return {lid: res for lid, res in synth.resources(region, "AWS::Scheduler::Schedule").items()
            if res["Properties"]["Name"] not in others}


#: The one schedule of both regions besides the heartbeat.
SYNC = "retention-sync"


@REGIONS
def test_each_region_schedules_the_retention_sync_as_the_config_says(synth: Synth, region: str) -> None:
    config = synth.config
    (schedule,) = [res["Properties"] for res in synth.resources(region, "AWS::Scheduler::Schedule").values()
                   if res["Properties"]["Name"] == state_machine_name(config.env_name, SYNC)]
    assert (schedule["ScheduleExpression"], schedule["ScheduleExpressionTimezone"], schedule["State"]) == (
        config.retention_sync_schedule, config.schedule_timezone, "ENABLED")
    assert schedule["Target"]["Arn"] == state_machine_arn(synth.topology, region, SYNC)
    assert json.loads(schedule["Target"]["Input"])["target_region"] == region


def test_drill_schedules_exist_only_in_the_dr_region(synth: Synth) -> None:
    assert drill_schedules(synth, "us-east-1") == {}
    assert len(drill_schedules(synth, "us-west-1")) == 3


@REGIONS
def test_each_region_schedules_the_heartbeat_function_every_minute(synth: Synth, region: str) -> None:
    (schedule,) = [res["Properties"] for res in synth.resources(region, "AWS::Scheduler::Schedule").values()
                   if res["Properties"]["Name"] == heartbeat_schedule_name(synth.config.env_name)]
    database_function_id, _ = synth.function(region, database_function_name(synth.config.env_name))
    assert (schedule["ScheduleExpression"], schedule["State"]) == ("rate(1 minute)", "ENABLED")
    assert schedule["Target"]["Arn"] == {"Fn::GetAtt": [database_function_id, "Arn"]}
    assert json.loads(schedule["Target"]["Input"]) == {"action": "heartbeat"}
    assert schedule["Target"]["RetryPolicy"] == {"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 60}


@REGIONS
def test_the_heartbeat_schedulers_role_may_only_invoke_the_database_function(synth: Synth, region: str) -> None:
    database_function_id, _ = synth.function(region, database_function_name(synth.config.env_name))
    (statement,) = statements(synth, region, "HeartbeatSchedulerPolicy")
    assert statement["Action"] == "lambda:InvokeFunction"
    assert statement["Resource"] == {"Fn::GetAtt": [database_function_id, "Arn"]}


@REGIONS
def test_each_region_evaluates_readiness_every_hour_with_the_runbook_function(synth: Synth, region: str) -> None:
    (schedule,) = [res["Properties"] for res in synth.resources(region, "AWS::Scheduler::Schedule").values()
                   if res["Properties"]["Name"] == evaluation_schedule_name(synth.config.env_name)]
    function_id, _ = synth.function(region, runbook_function_name(synth.config.env_name))
    assert (schedule["ScheduleExpression"], schedule["State"]) == ("rate(1 hour)", "ENABLED")
    assert schedule["Target"]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert json.loads(schedule["Target"]["Input"]) == {"action": "evaluate"}


@REGIONS
def test_not_ready_or_no_evaluation_for_an_hour_alarms_the_on_call_topic(synth: Synth, region: str) -> None:
    (alarm,) = [res["Properties"] for res in synth.resources(region, "AWS::CloudWatch::Alarm").values()
                if res["Properties"]["AlarmName"] == f"ehr-dr-{synth.config.env_name}-not-ready"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"], alarm["Period"]) == (
        "EhrDr/Readiness", "Ready", "Minimum", 3600)
    assert alarm["Dimensions"] == [{"Name": "EvaluatedIn", "Value": region}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"], alarm["TreatMissingData"]) == (
        "LessThanThreshold", 1, "breaching")
    assert alarm["AlarmActions"] == [synth.topology.in_region(region).oncall_topic_arn]


@REGIONS
def test_the_runbook_function_may_simulate_only_the_roles_that_run_the_plans(synth: Synth, region: str) -> None:
    (statement,) = [s for s in statements(synth, region, "FunctionPolicy") if s.get("Sid") == "EvaluatePermissions"]
    assert statement["Action"] == "iam:SimulatePrincipalPolicy"
    assert len(statement["Resource"]) == 5


def test_schedules_take_times_and_enablement_from_the_config(synth: Synth) -> None:
    config = synth.config
    found = {res["Properties"]["Name"]: res["Properties"]
             for res in drill_schedules(synth, "us-west-1").values()}
    expected = {"restore-drill": config.restore_drill_schedule,
                "verify-replication": config.verify_replication_schedule, "game-day": config.game_day_schedule}
    for runbook, expression in expected.items():
        schedule = found[state_machine_name(config.env_name, runbook)]
        assert schedule["ScheduleExpression"] == expression
        assert schedule["ScheduleExpressionTimezone"] == config.schedule_timezone
        assert schedule["Target"]["Arn"] == state_machine_arn(synth.topology, "us-west-1", runbook)
    assert found[state_machine_name(config.env_name, "game-day")]["State"] == "DISABLED"


def test_the_weekly_restore_drill_and_daily_verification_are_enabled_by_default(synth: Synth) -> None:
    states = {res["Properties"]["Name"]: res["Properties"]["State"]
              for res in synth.resources("us-west-1", "AWS::Scheduler::Schedule").values()}
    for runbook in ("restore-drill", "verify-replication"):
        assert states[state_machine_name(synth.config.env_name, runbook)] == "ENABLED"


@pytest.mark.parametrize(("region", "scheduled"), [
    ("us-west-1", ("restore-drill", "verify-replication", "game-day", SYNC)), ("us-east-1", (SYNC,))])
def test_the_scheduler_role_may_only_start_the_scheduled_state_machines(synth: Synth, region: str,
                                                                        scheduled: tuple[str, ...]) -> None:
    (statement,) = statements(synth, region, "SchedulerPolicy")
    assert statement["Action"] == "states:StartExecution"
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    assert sorted(resources) == sorted(state_machine_arn(synth.topology, region, runbook) for runbook in scheduled)


def asset_of(synth: Synth, region: str) -> Path:
    """The one asset both functions of a region run, as Lambda unpacks it."""
    (asset_hash,) = {function["Properties"]["Code"]["S3Key"].removesuffix(".zip")
                     for function in synth.resources(region, "AWS::Lambda::Function").values()}
    unpacked = synth.outdir.parent / f"unpacked-{asset_hash}"
    if not unpacked.is_dir():
        with zipfile.ZipFile(synth.outdir / f"asset.{asset_hash}.zip") as archive:
            archive.extractall(unpacked)
    return unpacked


def test_the_asset_holds_dr_runbooks_and_its_runtime_dependencies(synth: Synth) -> None:
    asset = asset_of(synth, "us-west-1")
    for needed in ("dr_runbooks/orchestration/handler.py", "dr_runbooks/runbooks/steps.py", "pydantic",
                   "pydantic_core", "tenacity", "pg8000", "scramp"):
        assert (asset / needed).exists(), needed


def test_the_asset_holds_nothing_from_stacks_aws_cdk_or_what_the_runtime_provides(synth: Synth) -> None:
    top_level = {path.name.split("-")[0].lower() for path in asset_of(synth, "us-west-1").iterdir()}
    assert not top_level & {"stacks", "aws_cdk", "cdk_nag", "constructs", "jsii", "boto3", "botocore", "moto"}
    assert not list(asset_of(synth, "us-west-1").rglob("aws_cdk"))


#: Run with only the asset and the runtime's own packages importable, as Lambda does.
IMPORT_CHECK = """
import importlib.abc, importlib.machinery, sys
RUNTIME = {"boto3", "botocore", "jmespath", "s3transfer", "dateutil", "urllib3", "six"}
class OnlyTheRuntime(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        origin = (spec and spec.origin) or ""
        if "site-packages" in origin and not origin.startswith(sys.argv[1]) and name.split(".")[0] not in RUNTIME:
            raise ModuleNotFoundError(f"{name} is not in the asset (found only at {origin})")
        return None
sys.meta_path.insert(0, OnlyTheRuntime())
sys.path.insert(0, sys.argv[1])
import dr_runbooks.orchestration.handler
from dr_runbooks.orchestration.catalog import RUNBOOKS
for runbook in RUNBOOKS.values():
    runbook.plan().verify_actions()
import pg8000
print("ok")
"""


def test_the_handler_and_every_step_action_import_from_the_asset_alone(synth: Synth) -> None:
    asset = asset_of(synth, "us-west-1")
    python = shutil.which(f"python{lambda_asset.PYTHON_VERSION}")
    assert python, f"python{lambda_asset.PYTHON_VERSION} (the Lambda runtime's Python) is needed to import the asset"
    done = subprocess.run([python, "-I", "-c", IMPORT_CHECK, str(asset)], capture_output=True, text=True, cwd=asset)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]


def test_synth_without_built_dependencies_says_what_to_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(lambda_asset, "BUILD", tmp_path)
    with pytest.raises(lambda_asset.AssetNotBuilt, match=r"^the runbook function's dependencies are not built: "
                                                         r"run `python -m stacks.lambda_asset` first$"):
        lambda_asset.asset_dir()


def test_the_app_imports_no_runbook_code_and_no_boto3() -> None:
    """Synth reads the plans (data) and the catalog; the runbooks' code, and boto3 with it, stays out of every synth."""
    done = subprocess.run([sys.executable, "-c", "import sys, stacks.app; "
                           "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore') "
                           "or m.startswith(('dr_runbooks.runbooks.driver', 'dr_runbooks.session'))))"],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.strip() == "[]", done.stderr[-2000:]
