"""The process running a switchover is killed (SIGKILL) mid-run; `drctl resume` in a new process finishes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dr_runbooks.observe import probes
from dr_runbooks.sandbox.api import Sandbox

MFA = ["--mfa-serial", "arn:aws:iam::123456789012:mfa/oncall", "--mfa-code", "123456"]
DRCTL = [sys.executable, "-c", "from dr_runbooks.cli import main; main()"]


def environment(sandbox: Sandbox) -> dict[str, str]:
    variables = {**os.environ, **sandbox.env}
    variables.pop("AWS_PROFILE", None)
    return variables


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
    process = subprocess.Popen(
        [*DRCTL, "switchover", "--to", "us-west-1", "--yes", *MFA],
        env=environment(sandbox), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    run_id = kill_when_done(process, tmp_path / ".ehr-dr" / "runs", "aurora-switchover")

    resumed = subprocess.run([*DRCTL, "resume", run_id, "--output", "json", *MFA], env=environment(sandbox),
                             cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)

    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "succeeded"
    writer = probes.global_cluster(sandbox.client("rds", "us-west-1"), sandbox.topology.global_cluster_id).writer()
    assert writer is not None and writer.region == "us-west-1"
