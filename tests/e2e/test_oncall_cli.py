"""drctl's on-call commands as a user runs them: separate processes, the sandbox's environment, exit codes, streams,
and a process killed mid-run. One module (one sandbox); tests do not assume which region writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dr_runbooks.observe import probes
from ehr_dr_sandbox.api import Sandbox

MFA = ["--mfa-serial", "arn:aws:iam::123456789012:mfa/oncall", "--mfa-code", "123456"]
DRCTL = [sys.executable, "-c", "from dr_runbooks.cli import main; main()"]


def environment(sandbox: Sandbox) -> dict[str, str]:
    variables = {**os.environ, **sandbox.env}
    variables.pop("AWS_PROFILE", None)
    return variables


def drctl(sandbox: Sandbox, tmp_path: object, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DRCTL, *args], env=environment(sandbox), cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)


def writer(sandbox: Sandbox) -> str:
    found = probes.global_cluster(sandbox.client("rds", "us-west-1"), sandbox.topology.global_cluster_id).writer()
    assert found is not None
    return found.region


def test_status_prints_json_on_stdout_and_exits_zero(sandbox: Sandbox, tmp_path: object) -> None:
    done = drctl(sandbox, tmp_path, "status", "--output", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["writer_region"] == writer(sandbox)


def test_a_dry_run_exits_zero_and_changes_nothing(sandbox: Sandbox, tmp_path: object) -> None:
    target = sandbox.topology.partner(writer(sandbox))
    table = sandbox.topology.in_region(target).runbook_table
    before = sandbox.client("dynamodb", target).scan(TableName=table)["Items"]
    done = drctl(sandbox, tmp_path, "switchover", "--to", target, "--dry-run", "--output", "json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["dry_run"] is True
    assert [step["step"] for step in plan["plan"]][:2] == ["canary-row", "canary-object"]
    assert sandbox.client("dynamodb", target).scan(TableName=table)["Items"] == before


def test_failover_without_mfa_exits_two_with_one_line_on_stderr(sandbox: Sandbox, tmp_path: object) -> None:
    target = sandbox.topology.partner(writer(sandbox))
    done = drctl(sandbox, tmp_path, "failover", "--to", target, "--yes", "--accept-data-loss")
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


def kill_when_done(process: subprocess.Popen[str], runs: Path, step: str, timeout: float = 60) -> str:
    """SIGKILL `process` as soon as its local journal shows `step` succeeded; return the run id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for journal in runs.glob("*.json"):
            try:
                steps = json.loads(journal.read_text())["steps"]
            except (ValueError, KeyError):
                continue  # being replaced as we read it
            if steps.get(step, {}).get("status") == "succeeded":
                process.send_signal(signal.SIGKILL)
                process.wait()
                return journal.stem
        time.sleep(0.02)
    process.kill()
    raise AssertionError(f"{step} never succeeded: {process.communicate()}")


def test_a_killed_switchover_is_finished_by_resume_in_a_new_process(sandbox: Sandbox, tmp_path: Path) -> None:
    target = sandbox.topology.partner(writer(sandbox))
    process = subprocess.Popen(
        [*DRCTL, "switchover", "--to", target, "--yes", *MFA],
        env=environment(sandbox), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    run_id = kill_when_done(process, tmp_path / ".ehr-dr" / "runs", "aurora-switchover")

    resumed = drctl(sandbox, tmp_path, "resume", run_id, "--output", "json", *MFA)

    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "succeeded"
    assert writer(sandbox) == target


def test_a_black_holed_target_region_is_one_line_and_exit_two_within_seconds(sandbox: Sandbox, tmp_path: Path) -> None:
    target = sandbox.topology.partner(writer(sandbox))
    sandbox.faults.region_down(target, hang=True)
    try:
        started = time.monotonic()
        done = drctl(sandbox, tmp_path, "failover", "--to", target, "--yes", "--accept-data-loss", *MFA)
        seconds = time.monotonic() - started
    finally:
        sandbox.faults.region_up(target)
    assert done.returncode == 2
    assert done.stderr.startswith(f"refused: cannot reach {target}") and len(done.stderr.strip().splitlines()) == 1
    assert seconds < 20, seconds
