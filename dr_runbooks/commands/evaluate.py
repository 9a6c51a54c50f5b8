"""`drctl evaluate`: would a failover work now? Every readiness check, a line each with its verdict and reason.

Read-only (no MFA, no lock). Exit codes as every drctl command: 0 ready; 1 not ready (a check failed, or could not
tell: a dark region, no answer in time); 2 refused (bad input such as an unknown runbook, no topology anywhere).
"""

from __future__ import annotations

import json
import sys

import click
from rich.table import Table

from dr_runbooks.commands.common import EXIT_DONE, EXIT_FAILED, Options, aws_options, refusals
from dr_runbooks.commands.oncall import DEFAULT_REGIONS
from dr_runbooks.commands.render import out
from dr_runbooks.orchestration.catalog import RUNBOOKS
from dr_runbooks.readiness.evaluate import Evaluation, evaluate
from dr_runbooks.runbooks.estate import Refused, check_region, load_topology_anywhere

_COLOURS = {"pass": "green", "fail": "bold red", "unknown": "yellow"}


@click.command("evaluate")
@click.option("--runbook", "runbook_names", multiple=True,
              help=f"evaluate only this runbook's plan (repeatable; default all: {', '.join(RUNBOOKS)})")
@click.option("--region", "regions", multiple=True, default=DEFAULT_REGIONS, show_default=True,
              help="where to read the topology from (the first that answers)")
@aws_options
@refusals
def evaluate_command(options: Options, runbook_names: tuple[str, ...], regions: tuple[str, ...]) -> None:
    """Check, read-only and in both regions, whether a failover would work now: permissions of every plan step,
    topology, traffic gates, replication, Aurora, recovery points, lock, state machines, secrets, keys, alarms,
    drills. Exit 0 ready, 1 not ready, 2 refused."""
    unknown = [name for name in runbook_names if name not in RUNBOOKS]
    if unknown:
        raise Refused(f"unknown runbook {unknown[0]!r}: expected one of {', '.join(RUNBOOKS)}")
    for region in regions:
        check_region(region)
    aws = options.session()
    topology = load_topology_anywhere(aws, options.env_name, regions)
    evaluation = evaluate(aws, topology, runbook_names or tuple(RUNBOOKS))
    print_evaluation(evaluation, options.as_json)
    sys.exit(EXIT_DONE if evaluation.ready else EXIT_FAILED)


def print_evaluation(evaluation: Evaluation, as_json: bool) -> None:
    if as_json:
        print(json.dumps(evaluation.summary(), default=str))
        return
    writer = evaluation.writer_region or "no region"
    table = Table(title=f"ehr-dr {evaluation.env_name}: readiness evaluated in {evaluation.seconds:.1f} s "
                        f"({writer} writes, failover target {evaluation.target_region})")
    for column in ("check", "region", "verdict", "reason", "AWS calls"):
        table.add_column(column)
    for check in evaluation.checks:
        colour = _COLOURS[check.verdict]
        table.add_row(check.check, check.region or "both", f"[{colour}]{check.verdict}[/]", check.reason,
                      str(check.aws_calls))
    out.print(table)
    for region in evaluation.dark_regions:
        out.print(f"[bold red]{region} does not answer[/]: its checks are unknown")
    colour = "green" if evaluation.ready else "red"
    out.print(f"[bold {colour}]{evaluation.verdict}[/]")
