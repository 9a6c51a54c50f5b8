"""drctl's on-call commands as a user runs them: a separate process, the sandbox's environment, exit codes, streams."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from dr_runbooks.sandbox.api import Sandbox

MFA = ["--mfa-serial", "arn:aws:iam::123456789012:mfa/oncall", "--mfa-code", "123456"]


def drctl(sandbox: Sandbox, tmp_path: object, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **sandbox.env}
    environment.pop("AWS_PROFILE", None)
    return subprocess.run(
        [sys.executable, "-c", "from dr_runbooks.cli import main; main()", *args],
        env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )


def test_status_prints_json_on_stdout_and_exits_zero(sandbox: Sandbox, tmp_path: object) -> None:
    done = drctl(sandbox, tmp_path, "status", "--output", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["writer_region"] == "us-east-1"


def test_a_dry_run_exits_zero_and_changes_nothing(sandbox: Sandbox, tmp_path: object) -> None:
    sandbox.client("cloudwatch", "us-west-1").put_metric_data(Namespace="AWS/RDS", MetricData=[{
        "MetricName": "AuroraGlobalDBReplicationLag", "Value": 1000.0,
        "Dimensions": [{"Name": "DBClusterIdentifier", "Value": sandbox.topology.in_region("us-west-1").db_cluster_id}],
    }])
    table = sandbox.topology.in_region("us-west-1").runbook_table
    before = sandbox.client("dynamodb", "us-west-1").scan(TableName=table)["Items"]
    done = drctl(sandbox, tmp_path, "switchover", "--to", "us-west-1", "--dry-run", "--output", "json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["dry_run"] is True
    assert [step["step"] for step in plan["plan"]][:2] == ["canary-row", "canary-object"]
    assert sandbox.client("dynamodb", "us-west-1").scan(TableName=table)["Items"] == before


def test_failover_without_mfa_exits_two_with_one_line_on_stderr(sandbox: Sandbox, tmp_path: object) -> None:
    done = drctl(sandbox, tmp_path, "failover", "--to", "us-west-1", "--yes", "--accept-data-loss")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "refused: drctl failover changes the estate and needs an MFA session: give --mfa-serial and --mfa-code "
        "(the sandbox accepts any 6-digit code)"
    ]


def test_resume_with_a_malformed_run_id_exits_two(sandbox: Sandbox, tmp_path: object) -> None:
    done = drctl(sandbox, tmp_path, "resume", "not-a-run", *MFA)
    assert done.returncode == 2
    assert "'not-a-run' is not a run id" in done.stderr
