"""drctl's on-call commands as a user runs them: separate processes, the sandbox's environment, exit codes, streams,
and a process killed mid-run. One module (one sandbox); tests do not assume which region writes."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from dr_runbooks.observe import probes
from ehr_dr_sandbox.api import Sandbox

#: Every changing command runs as the on-call engineer does: the dr-operator role, assumed with MFA.
MFA = ["--mfa-serial", "arn:aws:iam::123456789012:mfa/oncall", "--mfa-code", "123456", "--assume-operator"]
DRCTL = [sys.executable, "-c", "from dr_runbooks.cli import main; main()"]


#: A lease short enough that a killed run is seen dead within seconds (the default is a minute).
SHORT_LEASE = 2.0


def environment(sandbox: Sandbox, lease: float = SHORT_LEASE) -> dict[str, str]:
    variables = {**os.environ, **sandbox.env, "EHR_DR_LEASE_SECONDS": str(lease)}
    variables.pop("AWS_PROFILE", None)
    return variables


def drctl(sandbox: Sandbox, tmp_path: object, *args: str, lease: float = SHORT_LEASE
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DRCTL, *args], env=environment(sandbox, lease), cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)


def start(sandbox: Sandbox, tmp_path: object, *args: str, lease: float = SHORT_LEASE) -> subprocess.Popen[str]:
    return subprocess.Popen([*DRCTL, *args], env=environment(sandbox, lease), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)


def writer(sandbox: Sandbox) -> str:
    found = probes.global_cluster(sandbox.client("rds", "us-west-1"), sandbox.topology.global_cluster_id).writer()
    assert found is not None
    return found.region


def test_status_prints_json_on_stdout_and_exits_zero(sandbox: Sandbox, tmp_path: object) -> None:
    done = drctl(sandbox, tmp_path, "status", "--output", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["writer_region"] == writer(sandbox)


def test_evaluate_of_an_estate_never_backed_up_exits_one_naming_what_is_not_ready(
    sandbox: Sandbox, tmp_path: object
) -> None:
    done = drctl(sandbox, tmp_path, "evaluate", "--output", "json")
    assert done.returncode == 1, done.stderr
    failed = {check["check"] for check in json.loads(done.stdout)["checks"] if check["verdict"] != "pass"}
    assert "recovery-points" in failed  # no backup plan ran: the DR vault holds no copy yet


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


def kill_when_done(process: subprocess.Popen[str], runs: Path, step: str, timeout: float = 60,
                   sig: signal.Signals = signal.SIGKILL) -> str:
    """Send `sig` (SIGKILL: the process dies; SIGSTOP: it freezes) to `process` as soon as its local journal shows
    `step` succeeded; return the run id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for journal in runs.glob("*.json"):
            try:
                steps = json.loads(journal.read_text())["steps"]
            except (ValueError, KeyError):
                continue  # being replaced as we read it
            if steps.get(step, {}).get("status") == "succeeded":
                process.send_signal(sig)
                if sig == signal.SIGKILL:
                    process.wait()
                return journal.stem
        time.sleep(0.02)
    process.kill()
    raise AssertionError(f"{step} never succeeded: {process.communicate()}")


def lock_holders(sandbox: Sandbox) -> list[str]:
    """The run holding the environment's lock in each region's runbook table."""
    key = {"pk": {"S": f"lock#{sandbox.topology.env_name}"}, "sk": {"S": "lock"}}
    return [item["Item"]["run_id"]["S"] for region, resources in sorted(sandbox.topology.regions.items())
            if "Item" in (item := sandbox.client("dynamodb", region).get_item(TableName=resources.runbook_table,
                                                                               Key=key))]


def test_a_killed_switchover_is_finished_by_resume_in_a_new_process(sandbox: Sandbox, tmp_path: Path) -> None:
    target = sandbox.topology.partner(writer(sandbox))
    process = start(sandbox, tmp_path, "switchover", "--to", target, "--yes", *MFA)
    run_id = kill_when_done(process, tmp_path / ".ehr-dr" / "runs", "aurora-switchover")
    time.sleep(SHORT_LEASE)  # its lease runs out: nobody renews it

    resumed = drctl(sandbox, tmp_path, "resume", run_id, "--yes", "--output", "json", *MFA)

    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "succeeded"
    assert writer(sandbox) == target
    assert lock_holders(sandbox) == []


def test_two_switchovers_in_opposite_directions_at_once_only_one_runs(sandbox: Sandbox, tmp_path: Path) -> None:
    source = writer(sandbox)
    target = sandbox.topology.partner(source)
    first = start(sandbox, tmp_path, "switchover", "--to", target, "--yes", *MFA, lease=60)
    # Frozen once the writer moved, before its traffic did: the estate is mid-switchover, the run alive.
    run_id = kill_when_done(first, tmp_path / ".ehr-dr" / "runs", "aurora-switchover", sig=signal.SIGSTOP)
    try:
        second = drctl(sandbox, tmp_path, "switchover", "--to", source, "--yes", *MFA)
    finally:
        first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=120)

    assert second.returncode == 2, second.stderr
    assert f"refused: run {run_id} by " in second.stderr
    assert "and is alive (lease renewed" in second.stderr and "wait for it to end" in second.stderr
    assert "drctl resume" not in second.stderr
    assert first.returncode == 0, err
    assert writer(sandbox) == target
    assert lock_holders(sandbox) == []


def test_a_killed_runs_lock_is_broken_by_the_unlock_command_its_refusal_prints(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    target = sandbox.topology.partner(writer(sandbox))
    process = start(sandbox, tmp_path, "switchover", "--to", target, "--yes", *MFA)
    run_id = kill_when_done(process, tmp_path / ".ehr-dr" / "runs", "canary-row")
    time.sleep(SHORT_LEASE)
    refused = drctl(sandbox, tmp_path, "switchover", "--to", target, "--yes", *MFA)
    assert refused.returncode == 2, refused.stderr
    assert "but is not running" in refused.stderr
    printed = re.search(r"`drctl (unlock [^`]*)`", refused.stderr)
    assert printed is not None, refused.stderr
    words = [{"ARN": MFA[1], "CODE": MFA[3]}.get(word, word) for word in shlex.split(printed[1])]

    unlocked = drctl(sandbox, tmp_path, *words)

    assert unlocked.returncode == 0, unlocked.stderr
    assert unlocked.stderr.strip() == f"lock of {run_id} broken in us-east-1, us-west-1"
    assert lock_holders(sandbox) == []


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
