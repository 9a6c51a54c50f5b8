"""`drctl drill restore | failover` (`drill all --sandbox` is the sandbox package's: `ehr_dr_sandbox.main_job`).

Exit codes as every drctl command: 0 the drill passed; 1 it ran and failed (the evidence and report say why);
2 refused before changing anything (bad input, no topology, availability budget exhausted, lock held).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.table import Table

from dr_runbooks.commands.common import (
    EXIT_DONE,
    EXIT_FAILED,
    Mfa,
    Options,
    aws_options,
    confirm,
    mfa_options,
    refusals,
)
from dr_runbooks.commands.oncall import DEFAULT_REGIONS
from dr_runbooks.commands.render import Progress
from dr_runbooks.drills import gameday, gameday_plan, running
from dr_runbooks.drills.plans import DEFAULT_SAMPLE
from dr_runbooks.engine.lock import RunLock
from dr_runbooks.evidence.record import EvidenceRecord
from dr_runbooks.evidence.store import DEFAULT_EVIDENCE_DIR
from dr_runbooks.orchestration.commands import drill_remotely
from dr_runbooks.runbooks.estate import Refused, load_topology_anywhere

remote_option = click.option("--remote", is_flag=True,
                             help="run it in AWS: start its state machine in the DR region and follow it")
evidence_dir_option = click.option("--evidence-dir", type=click.Path(file_okay=False, path_type=Path),
                                   default=DEFAULT_EVIDENCE_DIR, show_default=True,
                                   help="the local evidence chain (drctl report reads it)")


def _print_record(record: EvidenceRecord) -> None:
    out = Console()
    verdict = "[green]PASSED[/]" if record.passed else "[red]FAILED[/]"
    table = Table(title=f"{record.kind} {record.run_id}: {verdict}")
    for column in ("verified", "result", "checked", "mismatched", "detail"):
        table.add_column(column)
    for check in record.verifications:
        table.add_row(check.what, check.result, str(check.checked), str(check.mismatched), check.detail or "")
    out.print(table)
    for name, objective in (("RTO", record.rto), ("RPO", record.rpo)):
        if objective is not None:
            measured = "not measured" if objective.measured_seconds is None else f"{objective.measured_seconds:.1f} s"
            out.print(f"{name}: {measured} (target {objective.target_seconds:.0f} s)")
    for error in record.errors:
        out.print(f"[red]error:[/] {error.message}", highlight=False)


@click.group("drill")
def drill() -> None:
    """Drills that prove recovery with the data itself, each leaving evidence (HIPAA 164.308(a)(7)(ii)(D))."""


@drill.command("restore")
@click.option("--recovery-point", "recovery_points", multiple=True, metavar="ARN",
              help="restore this recovery point (repeat for the database's and the archive's); default: the latest")
@click.option("--random", "pick_random", is_flag=True, help="restore a random recovery point of each data set")
@click.option("--sample", type=click.IntRange(min=1), default=DEFAULT_SAMPLE, show_default=True,
              help="chart files whose SHA-256 is checked")
@click.option("--all", "check_all", is_flag=True, help="check every chart file the restored database names")
@remote_option
@evidence_dir_option
@aws_options
@refusals
def restore(options: Options, recovery_points: tuple[str, ...], pick_random: bool, sample: int, check_all: bool,
            evidence_dir: Path, remote: bool) -> None:
    """Restore the DR vault's backups of the database and the chart archive into scratch resources, validate the
    data, tear them down, and record the result."""
    if pick_random and recovery_points:
        raise Refused("--random and --recovery-point exclude each other")
    aws = options.session()
    topology = load_topology_anywhere(aws, options.env_name, DEFAULT_REGIONS)
    region = topology.dr_region
    RunLock.of_environment(aws, topology, region).check_free()
    params = {"recovery_points": list(recovery_points), "random": pick_random, "sample": None if check_all else sample}
    if remote:
        finish(drill_remotely(aws, topology, "restore-drill", params, options), options)
    ctx = running.new_restore_context(aws, topology, params, aws.identity(region).arn)
    run = running.run_restore_drill(ctx, Progress(quiet=options.as_json))
    record = running.append_evidence(aws, topology, running.restore_evidence(run, topology,
                                                                              bool(options.endpoint_url)), evidence_dir)
    finish(record, options)


def finish(record: EvidenceRecord, options: Options) -> NoReturn:
    """Print a drill's evidence record (or its JSON) and exit 0 when it passed, 1 when not."""
    if options.as_json:
        click.echo(record.model_dump_json(indent=2))
    else:
        _print_record(record)
    sys.exit(EXIT_DONE if record.passed else EXIT_FAILED)


@drill.command("failover")
@click.option("--yes", is_flag=True, help="skip the typed confirmation (never MFA)")
@remote_option
@evidence_dir_option
@aws_options
@mfa_options
@refusals
def failover(options: Options, mfa: Mfa, yes: bool, evidence_dir: Path, remote: bool) -> None:
    """Game day: switch over to the DR region, verify and serve there, switch back; RTO and RPO per leg. Refused
    when this month's availability budget cannot absorb the expected downtime (with --remote, the budget is read
    from the evidence buckets, where the runs in AWS record their downtime)."""
    aws = options.session()
    topology = load_topology_anywhere(aws, options.env_name, DEFAULT_REGIONS)
    params = gameday_plan.game_day_preflight(aws, topology, topology.dr_region,
                                             evidence=None if remote else evidence_dir)
    session = mfa.session(aws, topology.dr_region, topology.role_arns.get("dr-operator"), "drctl drill failover")
    Console(stderr=True).print(f"availability budget left in {params['budget_month']}: "
                               f"{params['budget_left_minutes']:.1f} min")
    confirm("game day", yes)
    if remote:
        finish(drill_remotely(session, topology, "game-day", params, options), options)
    ctx = gameday_plan.new_game_day_context(session, topology, {**params, "evidence_dir": str(evidence_dir)},
                                            session.identity(topology.dr_region).arn)
    run = gameday_plan.run_game_day(ctx, Progress(quiet=options.as_json))
    record = gameday.game_day_evidence(run, topology, bool(options.endpoint_url))
    finish(running.append_evidence(session, topology, record, evidence_dir), options)
