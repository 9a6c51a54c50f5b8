"""The orchestration stack of each region, synthesized with the whole estate (the compliance packs run in that synth,
so a finding fails every test here): state machines as generated from the plans, logging, tracing, least privilege,
schedules in the DR region, alarms to on-call, and the Lambda asset."""

from __future__ import annotations

import os

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dr_runbooks.config import DeploymentConfig
from dr_runbooks.orchestration.definition import definition
from dr_runbooks.runbooks.plans import PLANS
from dr_runbooks.topology import Topology, build_topology, state_machine_arn, state_machine_name
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
    (function_id,) = synth.resources(region, "AWS::Lambda::Function")
    return {res["Properties"]["StateMachineName"]: {
        **res["Properties"], "Definition": json.loads(_resolve(res["Properties"]["DefinitionString"], function_id))}
        for res in synth.resources(region, "AWS::StepFunctions::StateMachine").values()}


@REGIONS
def test_each_runbook_has_its_generated_state_machine_in_each_region(synth: Synth, region: str) -> None:
    found = machines(synth, region)
    assert {name: machine["Definition"] for name, machine in found.items()} == {
        state_machine_name(synth.config.env_name, runbook): definition(make(), FUNCTION_ARN)
        for runbook, make in PLANS.items()}


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
    (policy,) = [res for lid, res in synth.resources(region, "AWS::IAM::ManagedPolicy").items()
                 if lid.startswith(policy_id_start)]
    return policy["Properties"]["PolicyDocument"]["Statement"]


@REGIONS
def test_roles_have_no_inline_policies(synth: Synth, region: str) -> None:
    assert synth.resources(region, "AWS::IAM::Policy") == {}


@REGIONS
def test_the_state_machines_may_invoke_only_the_runbook_function(synth: Synth, region: str) -> None:
    (function_id,) = synth.resources(region, "AWS::Lambda::Function")
    invoke = [s for s in statements(synth, region, "StateMachinePolicy") if "lambda:InvokeFunction" in str(s)]
    assert invoke == [{"Action": "lambda:InvokeFunction", "Effect": "Allow",
                       "Resource": {"Fn::GetAtt": [function_id, "Arn"]}, "Sid": "InvokeRunbookFunction"}]


@REGIONS
def test_the_function_writes_journal_lock_and_evidence_only_in_its_own_region(synth: Synth, region: str) -> None:
    by_sid = {s["Sid"]: s for s in statements(synth, region, "FunctionPolicy")}
    here = synth.topology.in_region(region)
    assert by_sid["JournalAndLock"]["Resource"] == f"arn:aws:dynamodb:{region}:123456789012:table/{here.runbook_table}"
    assert by_sid["Evidence"]["Resource"] == [f"arn:aws:s3:::{here.evidence_bucket}",
                                              f"arn:aws:s3:::{here.evidence_bucket}/*"]
    assert by_sid["ReadTopology"]["Resource"].startswith(f"arn:aws:ssm:{region}:")
    assert by_sid["OnCall"]["Resource"] == here.oncall_topic_arn


@REGIONS
def test_no_statement_allows_every_action_of_a_service(synth: Synth, region: str) -> None:
    for prefix in ("FunctionPolicy", "StateMachinePolicy"):
        for statement in statements(synth, region, prefix):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not [action for action in actions if action.endswith(":*") or action == "*"], statement


@REGIONS
def test_a_failed_execution_of_any_runbook_alarms_the_on_call_topic(synth: Synth, region: str) -> None:
    alarms = [res["Properties"] for res in synth.resources(region, "AWS::CloudWatch::Alarm").values()]
    assert sorted(alarm["AlarmName"] for alarm in alarms) == sorted(
        f"ehr-dr-demo-runbook-failed-{runbook}" for runbook in PLANS)
    for alarm in alarms:
        assert (alarm["MetricName"], alarm["Namespace"], alarm["Threshold"]) == ("ExecutionsFailed", "AWS/States", 0)
        assert alarm["AlarmActions"] == [synth.topology.in_region(region).oncall_topic_arn]


def test_schedules_exist_only_in_the_dr_region(synth: Synth) -> None:
    assert synth.resources("us-east-1", "AWS::Scheduler::Schedule") == {}
    assert len(synth.resources("us-west-1", "AWS::Scheduler::Schedule")) == 3


def test_schedules_take_times_and_enablement_from_the_config(synth: Synth) -> None:
    config = synth.config
    found = {res["Properties"]["Name"]: res["Properties"]
             for res in synth.resources("us-west-1", "AWS::Scheduler::Schedule").values()}
    expected = {"restore-drill": config.restore_drill_schedule,
                "verify-replication": config.verify_replication_schedule, "game-day": config.game_day_schedule}
    for runbook, expression in expected.items():
        schedule = found[state_machine_name(config.env_name, runbook)]
        assert schedule["ScheduleExpression"] == expression
        assert schedule["ScheduleExpressionTimezone"] == config.schedule_timezone
        assert schedule["Target"]["Arn"] == state_machine_arn(synth.topology, "us-west-1", runbook)
    assert found[state_machine_name(config.env_name, "game-day")]["State"] == "DISABLED"


def test_a_schedule_whose_runbook_has_no_state_machine_yet_is_disabled(synth: Synth) -> None:
    states = {res["Properties"]["Name"]: res["Properties"]["State"]
              for res in synth.resources("us-west-1", "AWS::Scheduler::Schedule").values()}
    for runbook in ("restore-drill", "verify-replication"):
        assert states[state_machine_name(synth.config.env_name, runbook)] == (
            "ENABLED" if runbook in PLANS else "DISABLED")


def test_the_scheduler_role_may_only_start_the_scheduled_state_machines(synth: Synth) -> None:
    (statement,) = statements(synth, "us-west-1", "SchedulerPolicy")
    assert statement["Action"] == "states:StartExecution"
    assert sorted(statement["Resource"]) == sorted(
        state_machine_arn(synth.topology, "us-west-1", runbook) for runbook in ("restore-drill", "verify-replication",
                                                                                "game-day"))


def asset_of(synth: Synth, region: str) -> Path:
    (function,) = synth.resources(region, "AWS::Lambda::Function").values()
    asset_hash = function["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    return synth.outdir / f"asset.{asset_hash}"


def test_the_asset_holds_dr_runbooks_and_its_runtime_dependencies(synth: Synth) -> None:
    asset = asset_of(synth, "us-west-1")
    for needed in ("dr_runbooks/orchestration/handler.py", "dr_runbooks/runbooks/steps.py", "pydantic",
                   "pydantic_core", "tenacity", "psycopg", "psycopg_binary"):
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
from dr_runbooks.runbooks.plans import PLANS
for make in PLANS.values():
    make().verify_actions()
import psycopg
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
