"""`drctl sandbox up|status|down|seed|fault`: the local two-region estate from a shell.

`up` starts the sandbox server as a background process (state dir `.ehr-dr/sandbox` under the current directory unless
`--state-dir`), waits until it has provisioned the estate, and prints the endpoint and the `export` lines that point
drctl and the AWS CLI at it. `down` stops it and removes the state dir; it is safe to run twice. Refusals (a sandbox
already up, a stale state dir, a port in use, a bad cdk.json, a start that fails) are one line and exit 2, and leave
nothing behind. Importing this module is cheap: moto is imported by the server process, not here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import psutil
from rich.console import Console
from rich.table import Table

from dr_runbooks.config import ConfigError
from dr_runbooks.runbooks.heartbeat import INTERVAL_SECONDS
from ehr_dr_sandbox.state import (
    DEFAULT_STATE_DIR,
    LOG_FILE,
    STATE_FILE,
    SandboxState,
    pid_alive,
    read_state,
    state_file,
)

#: How long `up` waits for the server to listen and provision (moto imports and first calls take a few seconds).
START_TIMEOUT_SECONDS = 90
STOP_TIMEOUT_SECONDS = 30

console = Console()
state_dir_option = click.option(
    "--state-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_STATE_DIR, show_default=True,
    help="Where the sandbox keeps its state file, log and data.",
)


class Refused(click.ClickException):
    """Bad input or a state that forbids the command: one line, exit 2, nothing changed."""

    exit_code = 2


#: `up`'s accelerated backup-plan clock: five minutes stand for an hour (`backup_plans.py`), so the hourly rule makes
#: a recovery point (and its copy) every five minutes; tests start sandboxes without it.
BACKUP_PLAN_SECONDS = 300.0

@click.group("sandbox")
def sandbox() -> None:
    """The whole two-region estate emulated locally (moto + emulations), for drills and tests: no AWS account."""


@sandbox.command()
@state_dir_option
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Endpoint port (default: a free one).")
@click.option("--cdk-json", type=click.Path(dir_okay=False, path_type=Path), default=Path("cdk.json"),
              show_default=True, help="The deployment config to provision (in the sandbox account).")
@click.option("--heartbeat-seconds", type=click.FloatRange(min=0), default=INTERVAL_SECONDS, show_default=True,
              help="Seconds between heartbeats in the writing region (AWS's schedule: every minute; 0: none).")
@click.option("--backup-plan-seconds", type=click.FloatRange(min=0), default=BACKUP_PLAN_SECONDS,
              show_default=True, help="Seconds that stand for one hour of the backup plans' schedule, so recovery "
              "points appear as on AWS, fast (0: the plans never run).")
def up(state_dir: Path, port: int, cdk_json: Path, heartbeat_seconds: float, backup_plan_seconds: float) -> None:
    """Start the sandbox in the background, provision the estate, print how to point drctl at it.

    Prints the endpoint on stderr and the `export` lines on stdout: `eval "$(drctl sandbox up)"`.
    """
    _refuse_if_present(state_dir)
    _check_config(cdk_json)
    if port and not _port_free(port):
        raise Refused(f"port {port} is in use: choose another with --port, or omit it for a free one")
    created = _first_missing(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / LOG_FILE
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ehr_dr_sandbox.server", "--state-dir", str(state_dir.resolve()),
             "--cdk-json", str(cdk_json.resolve()), "--port", str(port), "--heartbeat-seconds", str(heartbeat_seconds),
             "--backup-plan-seconds", str(backup_plan_seconds)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    state = _wait_until_up(process, state_dir)
    if state is None:
        reason = _last_error(log_path) or f"the sandbox server did not start within {START_TIMEOUT_SECONDS} s"
        _stop_process(process.pid)
        _remove(state_dir, created)
        raise Refused(reason)
    from ehr_dr_sandbox.api import Sandbox

    env = Sandbox.attach(state_dir).env
    # The exports alone on stdout, so `eval "$(drctl sandbox up)"` points the shell at the sandbox.
    click.echo(f"sandbox up: {state.endpoint_url} (pid {state.pid}, state {state_dir})", err=True)
    click.echo("\n".join(f"export {name}={shlex.quote(value)}" for name, value in env.items()))


@sandbox.command()
@state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable status.")
def status(state_dir: Path, as_json: bool) -> None:
    """What runs: endpoint, process, faults, replication backlog, traffic. Exit 1 when no sandbox is up."""
    state = read_state(state_dir)
    if state is None:
        raise click.ClickException(f"no sandbox is up in {state_dir}")
    if not pid_alive(state.pid):
        raise click.ClickException(f"stale sandbox state in {state_dir}: pid {state.pid} is not running "
                                   "(run: drctl sandbox down)")
    from ehr_dr_sandbox.faults import SandboxControlError, control_request

    try:
        report = control_request(state.endpoint_url, "status", timeout=10)
    except (OSError, SandboxControlError) as error:
        raise click.ClickException(f"the sandbox in {state_dir} (pid {state.pid}) does not answer at "
                                   f"{state.endpoint_url}: {error}") from None
    memory = _rss_mb(state.pid)
    if as_json:
        click.echo(json.dumps({**report, "rss_mb": memory, "state_dir": str(state_dir)}, indent=2, default=str))
        return
    table = Table(title=f"sandbox {report['env_name']}", show_header=False)
    table.add_row("endpoint", state.endpoint_url)
    table.add_row("process", f"pid {state.pid}, up since {state.started_at}, {memory:.0f} MB RSS")
    table.add_row("regions", ", ".join(report["regions"]))
    for section in sorted(set(report) - {"endpoint_url", "pid", "env_name", "regions"}):
        table.add_row(section, json.dumps(report[section], default=str))
    console.print(table)


@sandbox.command()
@state_dir_option
def down(state_dir: Path) -> None:
    """Stop the sandbox and remove its state dir; with nothing up, say so and succeed."""
    state = read_state(state_dir) if state_file(state_dir).exists() else None
    if state is None and not state_dir.exists():
        click.echo(f"no sandbox in {state_dir}: nothing to do")
        return
    if state is not None and pid_alive(state.pid):
        from ehr_dr_sandbox.faults import control_request

        with contextlib.suppress(OSError, ValueError):
            control_request(state.endpoint_url, "shutdown", {}, timeout=5)
        _stop_process(state.pid)
    if any(path.name not in (STATE_FILE, LOG_FILE) for path in state_dir.iterdir()):
        from ehr_dr_sandbox.server import remove_leftovers

        remove_leftovers(state_dir)  # the server was killed before its stop hooks ran
    shutil.rmtree(state_dir, ignore_errors=True)
    click.echo(f"sandbox down: removed {state_dir}" + (f" (was pid {state.pid})" if state else ""))


@sandbox.command()
@state_dir_option
@click.option("--patients", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--files-per-patient", type=click.IntRange(min=0), default=5, show_default=True)
def seed(state_dir: Path, patients: int, files_per_patient: int) -> None:
    """Write synthetic patients and chart files (no real PHI) into the running sandbox."""
    result = _attach(state_dir).seed(patients=patients, files_per_patient=files_per_patient)
    click.echo(f"seeded {result.patients} patients, {result.files} chart files ({result.bytes / 1e6:.1f} MB) "
               f"in {result.seconds} s; database: {result.database}")


@sandbox.group()
def fault() -> None:
    """Inject or lift faults: a dark region, a replication outage, throttling, and emulations' own actions."""


@fault.command("region-down")
@click.argument("region")
@click.option("--hang", is_flag=True, help="Accept requests and never answer (black-holed) instead of closing them.")
@state_dir_option
def region_down(region: str, hang: bool, state_dir: Path) -> None:
    """Requests signed for REGION get no answer (their connections close, or hang with --hang), as if it were
    dark."""
    _show(_run_action(state_dir, "region-down", region=region, hang=hang))


@fault.command("region-up")
@click.argument("region")
@state_dir_option
def region_up(region: str, state_dir: Path) -> None:
    """REGION answers again."""
    _show(_run_action(state_dir, "region-up", region=region))


@fault.command("pause-replication")
@state_dir_option
def pause_replication(state_dir: Path) -> None:
    """S3 replication stops; new writes queue up (PENDING) until resumed."""
    _show(_run_action(state_dir, "replication-pause"))


@fault.command("resume-replication")
@state_dir_option
def resume_replication(state_dir: Path) -> None:
    _show(_run_action(state_dir, "replication-resume"))


@fault.command()
@click.argument("service")
@click.option("--calls", type=click.IntRange(min=1), help="Throttle the next N calls of SERVICE.")
@click.option("--percent", type=click.FloatRange(0, 100), help="Throttle this share of SERVICE's calls.")
@state_dir_option
def throttle(service: str, calls: int | None, percent: float | None, state_dir: Path) -> None:
    """SERVICE (its signing name: s3, rds, monitoring, ...) answers with AWS's throttling error."""
    if (calls is None) == (percent is None):
        raise Refused("throttle needs exactly one of --calls or --percent")
    _show(_run_action(state_dir, "throttle", service=service, calls=calls, percent=percent))


@fault.command()
@state_dir_option
def clear(state_dir: Path) -> None:
    """Lift every region-down and throttle fault."""
    _show(_run_action(state_dir, "clear"))


@fault.command("action")
@click.argument("name")
@click.option("--arg", "arguments", multiple=True, metavar="KEY=VALUE", help="An argument (JSON value or text).")
@state_dir_option
def action(name: str, arguments: tuple[str, ...], state_dir: Path) -> None:
    """Run an emulation's named action (e.g. kill-primary-db); `drctl sandbox status` lists them."""
    parsed: dict[str, Any] = {}
    for argument in arguments:
        key, separator, value = argument.partition("=")
        if not separator or not key:
            raise Refused(f"--arg {argument!r} is not KEY=VALUE")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    _show(_run_action(state_dir, name, **parsed))


# ------------------------------------------------------------------------------------------------------------ helpers


def _refuse_if_present(state_dir: Path) -> None:
    state = read_state(state_dir) if state_file(state_dir).exists() else None
    if state is None:
        return
    if pid_alive(state.pid):
        raise Refused(f"a sandbox is already up in {state_dir} (pid {state.pid}, {state.endpoint_url}): "
                      "use it, or run drctl sandbox down first")
    raise Refused(f"stale sandbox state in {state_dir}: pid {state.pid} is not running (run: drctl sandbox down)")


def _check_config(cdk_json: Path) -> None:
    from ehr_dr_sandbox.provision import sandbox_config

    try:
        sandbox_config(cdk_json)
    except ConfigError as error:
        raise Refused(str(error).replace("\n", "; ")) from None
    except (OSError, json.JSONDecodeError) as error:
        raise Refused(f"{cdk_json}: cannot read a CDK context from it ({error})") from None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_until_up(process: subprocess.Popen[bytes], state_dir: Path) -> SandboxState | None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None
        state = read_state(state_dir) if state_file(state_dir).exists() else None
        if state is not None and state.pid == process.pid:
            return state
        time.sleep(0.1)
    return None


def _last_error(log_path: Path) -> str | None:
    if not log_path.exists():
        return None
    lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.startswith("error: ")]
    return lines[-1].removeprefix("error: ") if lines else None


def _stop_process(pid: int) -> None:
    """Wait for a graceful exit, then SIGTERM, then SIGKILL."""
    try:
        process = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS / 3)
        return
    except psutil.TimeoutExpired:
        pass
    for stop in (psutil.Process.terminate, psutil.Process.kill):
        with contextlib.suppress(psutil.NoSuchProcess):
            stop(process)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS / 3)
            return
        except psutil.TimeoutExpired:
            continue


def _first_missing(path: Path) -> Path | None:
    """The outermost directory of `path` that does not exist yet (what `mkdir(parents=True)` will create)."""
    missing = None
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


def _remove(state_dir: Path, created: Path | None) -> None:
    """Undo a failed `up`: the directories `up` made, else the log it wrote into the user's state dir."""
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(state_dir / LOG_FILE)


def _rss_mb(pid: int) -> float:
    """Resident memory of the server and every process it started (the PostgreSQL pair), in MB."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += process.memory_info().rss
    return total / 1e6


def _attach(state_dir: Path) -> Any:
    from ehr_dr_sandbox.api import Sandbox

    state = read_state(state_dir) if state_file(state_dir).exists() else None
    if state is None:
        raise Refused(f"no sandbox is up in {state_dir} (run: drctl sandbox up)")
    if not pid_alive(state.pid):
        raise Refused(f"stale sandbox state in {state_dir}: pid {state.pid} is not running (run: drctl sandbox down)")
    return Sandbox.attach(state_dir)


def _run_action(state_dir: Path, name: str, **arguments: Any) -> Any:
    from ehr_dr_sandbox.faults import SandboxControlError

    sandbox_handle = _attach(state_dir)
    try:
        return sandbox_handle.action(name, **arguments)
    except SandboxControlError as error:
        raise Refused(str(error)) from None


def _show(result: Any) -> None:
    click.echo(json.dumps(result, indent=2, default=str))
