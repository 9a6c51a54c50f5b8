"""`drctl drill all --sandbox`: the whole estate rehearsed on one machine, ending in an auditor-ready report.

Phases: sandbox up, seed, backup (the plan's rule, run now), restore drill, failover game day, verify replication,
report, sandbox down. Each is timed and shown as it goes; a failed drill does not stop the later phases (the report
is most useful when something failed), but a phase that cannot run (the sandbox did not start) does.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import click
from rich.console import Console

from dr_runbooks.commands.common import EXIT_DONE, EXIT_FAILED
from dr_runbooks.commands.render import Progress
from dr_runbooks.drills import gameday, gameday_plan, running
from dr_runbooks.drills.backups import take_backups
from dr_runbooks.drills.plans import DEFAULT_SAMPLE
from dr_runbooks.evidence.chain import verify_chain
from dr_runbooks.evidence.commands import DEFAULT_REPORT_DIR
from dr_runbooks.evidence.record import EvidenceRecord
from dr_runbooks.evidence.report import ReportFiles, build_report, write_report
from dr_runbooks.evidence.store import EvidenceLog, LocalEvidenceDir
from dr_runbooks.session import AwsSession, boto_session
from dr_runbooks.verify import plan
from ehr_dr_sandbox.api import SANDBOX_CREDENTIALS, Sandbox

T = TypeVar("T")
SANDBOX_MFA_CODE = "123456"
#: The deployment config of a checkout (the working directory's), and the demo one shipped as package data.
CHECKOUT_CONFIG = Path("cdk.json")
DEMO_CONFIG = Path(__file__).resolve().parent / "demo" / "cdk.json"


@dataclass
class MainJob:
    """What the main job did: seconds per phase, the evidence it sealed, where the report is."""

    phases: dict[str, float] = field(default_factory=dict)
    records: list[EvidenceRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    report: ReportFiles | None = None

    @property
    def passed(self) -> bool:
        return not self.errors and bool(self.records) and all(record.passed for record in self.records)


class Phases:
    """Each phase a line on the console as it starts and ends, with its time."""

    def __init__(self, console: Console, job: MainJob):
        self.console, self.job = console, job

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.console.print(f"[bold cyan]▶ {name}[/]")
        started = time.monotonic()
        try:
            yield
        finally:
            self.job.phases[name] = round(time.monotonic() - started, 2)
            self.console.print(f"[bold]  {name}: {self.job.phases[name]:.1f} s[/]")

    def run(self, name: str, work: Callable[[], T]) -> T:
        with self.phase(name):
            return work()

    def attempt(self, name: str, work: Callable[[], T]) -> T | None:
        """A phase whose failure is shown and recorded, and the job goes on (to the report, to sandbox down)."""
        with self.phase(name):
            try:
                return work()
            except Exception as error:  # whatever went wrong, the later phases must still run
                message = f"{name}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
                self.job.errors.append(message)
                self.console.print(f"[bold red]  ✗ {message}[/]", highlight=False)
                return None


def _session(sandbox: Sandbox) -> AwsSession:
    boto = boto_session(aws_access_key_id=SANDBOX_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=SANDBOX_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                        region_name=sandbox.config.primary_region)
    return AwsSession(boto, endpoint_url=sandbox.endpoint_url)


def run_main_job(cdk_json: Path, state_dir: Path | None, out_dir: Path, patients: int, files_per_patient: int,
                 sample: int | None, console: Console) -> MainJob:
    job = MainJob()
    phases = Phases(console, job)
    home = state_dir or Path(tempfile.mkdtemp(prefix="ehr-dr-drill-"))
    evidence_dir, runs_dir = home / "evidence", home / "runs"
    try:
        sandbox = phases.run("sandbox up", lambda: Sandbox.start(home / "sandbox", cdk_json=cdk_json))
        try:
            log = EvidenceLog(sandbox.topology.env_name, [LocalEvidenceDir(evidence_dir)])
            before = len(log.load_chain())
            _drills(sandbox, phases, evidence_dir, runs_dir, patients, files_per_patient, sample, console)
            chain = log.load_chain()
            job.records = chain[before:]
            if job.records:
                job.report = phases.attempt("report", lambda: write_report(build_report(
                    chain, job.records, verify_chain(chain), sandbox.topology.availability_target,
                    datetime.now(UTC)), out_dir))
        finally:
            phases.run("sandbox down", sandbox.stop)
    finally:
        if state_dir is None:
            shutil.rmtree(home, ignore_errors=True)
    return job


def _drills(sandbox: Sandbox, phases: Phases, evidence_dir: Path, runs_dir: Path, patients: int,
            files_per_patient: int, sample: int | None, console: Console) -> None:
    """Each drill seals its evidence into the local chain (and the DR region's evidence bucket). Everything but the
    seed runs as an on-call engineer would: the dr-operator role, assumed with MFA, whose every call the sandbox
    authorizes against the policy the stacks deploy."""
    topology = sandbox.topology
    serial = f"arn:aws:iam::{topology.account}:mfa/drill"
    aws = _session(sandbox).with_mfa(serial, SANDBOX_MFA_CODE, topology.dr_region, topology.role_arns["dr-operator"])
    operator = aws.identity(topology.dr_region).arn
    listener = Progress(quiet=False)

    def seal(record: EvidenceRecord) -> None:
        running.append_evidence(aws, topology, record, evidence_dir)

    seeded = phases.run("seed", lambda: sandbox.seed(patients=patients, files_per_patient=files_per_patient))
    sandbox.action("replication-drain", timeout=60)  # the backups and checks start from a replicated archive
    console.print(f"  {seeded.patients} patients, {seeded.files} chart files, replicated")
    phases.run("backup", lambda: take_backups(aws, topology))

    def restore() -> None:
        ctx = running.new_restore_context(aws, topology, {"sample": sample}, operator, runs_dir)
        seal(running.restore_evidence(running.run_restore_drill(ctx, listener), topology, sandbox=True))

    phases.attempt("restore drill", restore)

    def game_day() -> None:
        params = gameday_plan.game_day_preflight(aws, topology, topology.dr_region, evidence=evidence_dir)
        ctx = gameday_plan.new_game_day_context(aws, topology, {**params, "evidence_dir": str(evidence_dir)},
                                                operator, runs_dir)
        seal(gameday.game_day_evidence(gameday_plan.run_game_day(ctx, listener), topology, sandbox=True))

    def verify_replication() -> None:
        ctx = plan.new_verify_context(aws, topology, topology.dr_region, operator, runs_dir)
        seal(plan.verify_evidence(plan.run_verify_replication(ctx, listener), topology, sandbox=True))

    phases.attempt("failover game day", game_day)
    phases.attempt("verify replication", verify_replication)


def deployment_config(cdk_json: Path | None, console: Console) -> Path:
    """The config to rehearse: `--cdk-json` when given, else the working directory's cdk.json (a checkout), else the
    demo config shipped in this package (`ehr_dr_sandbox/demo/cdk.json`, the checkout's own), said on stderr: a
    first try after `pip install` needs no checkout."""
    if cdk_json is not None:
        return cdk_json
    if CHECKOUT_CONFIG.is_file():
        return CHECKOUT_CONFIG
    console.print(f"no {CHECKOUT_CONFIG} here: rehearsing the demo deployment config shipped with ehr-dr "
                  f"({DEMO_CONFIG}); give --cdk-json for your own", highlight=False)
    return DEMO_CONFIG


@click.command("all")
@click.option("--sandbox", "on_sandbox", is_flag=True, required=True,
              help="run on a local sandbox (the only target of `all`: it starts and stops its own estate)")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              help="keep the sandbox state, journals and evidence here (default: a temp dir, removed at the end)")
@click.option("--cdk-json", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="the deployment config the sandbox rehearses [default: ./cdk.json, else the package's demo config]")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_REPORT_DIR,
              show_default=True, help="where the report (Markdown, HTML, JSON) is written")
@click.option("--patients", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--files-per-patient", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--sample", type=click.IntRange(min=1), default=DEFAULT_SAMPLE, show_default=True,
              help="chart files the restore drill checks")
def all_drills(on_sandbox: bool, state_dir: Path | None, cdk_json: Path | None, out_dir: Path, patients: int,
               files_per_patient: int, sample: int) -> None:
    """The full drill on a sandbox: up, seed, backup, restore drill, failover game day, verify replication,
    report, down. Prints where the report is."""
    console = Console(stderr=True)
    job = run_main_job(deployment_config(cdk_json, console), state_dir, out_dir, patients, files_per_patient, sample,
                       console)
    total = sum(job.phases.values())
    console.print(f"[bold]{'PASSED' if job.passed else 'FAILED'}[/] in {total:.1f} s: "
                  + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in job.phases.items()), highlight=False)
    for record in job.records:
        if not record.passed:
            reasons = [error.message for error in record.errors] or ["a check failed"]
            console.print(f"[red]{record.kind} {record.run_id}:[/] {reasons[0]}", highlight=False)
    for error in job.errors:
        console.print(f"[red]{error}[/]", highlight=False)
    if job.report is not None:
        click.echo(f"report: {job.report.html}\n        {job.report.markdown}\n        {job.report.json}")
    else:
        console.print("[red]no report was written[/]")
    sys.exit(EXIT_DONE if job.passed else EXIT_FAILED)
