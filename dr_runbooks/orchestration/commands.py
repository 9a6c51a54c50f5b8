"""The CLI side of the orchestration: `--remote` runs of the on-call runbooks and `drctl runs`.

`run_remotely` is what `drctl switchover|failover|failback --remote` does once the usual preflight, acknowledgment and
confirmation passed; `runs` lists the recent executions of every runbook state machine in both regions with their
outcome and the RTO and RPO their journals measured (the runbook's own evidence builder reads them, so a drill's RTO is
its restore time and a game day's its slower leg, as in its evidence).
"""

from __future__ import annotations

import contextlib
import json
import sys
from datetime import UTC
from typing import Any, NoReturn

import click
from botocore.exceptions import BotoCoreError, ClientError
from rich.table import Table

from dr_runbooks.commands.common import EXIT_DONE, EXIT_FAILED, Options, aws_options, refusals
from dr_runbooks.commands.render import Progress, err, out, print_run
from dr_runbooks.engine.journal import Journal, JournalNotFound, region_of_run
from dr_runbooks.evidence.record import EvidenceRecord
from dr_runbooks.orchestration import remote
from dr_runbooks.orchestration.catalog import RUNBOOKS, deployed_in
from dr_runbooks.runbooks.estate import check_region, load_topology_anywhere
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology, state_machine_arn

DEFAULT_REGIONS = ("us-east-1", "us-west-1")


def start_and_follow(session: AwsSession, topology: Topology, runbook: str, target: str, params: dict[str, Any],
                     options: Options) -> remote.RemoteRun:
    """Start the runbook's state machine in `target` with the params the caller's preflight produced; follow it with
    the progress lines of a local run until it ends."""
    operator = session.identity(target).arn
    run_id, execution_arn = remote.start(session, topology, runbook, target, params, operator)
    err.print(f"started {runbook} in {target}: execution {run_id}")
    return remote.follow(session, topology, run_id, execution_arn, runbook, target, Progress(quiet=options.as_json))


def _never_journaled(ended: remote.RemoteRun, options: Options) -> NoReturn:
    if options.as_json:
        click.echo(json.dumps({"run_id": ended.run_id, "status": ended.status.lower(), "error": ended.error}))
    else:
        err.print(f"[red]execution {ended.status}[/] before the run journaled anything: {ended.error}")
    sys.exit(EXIT_FAILED)


def run_remotely(session: AwsSession, topology: Topology, runbook: str, target: str, seen: dict[str, Any],
                 options: Options) -> NoReturn:
    """An on-call runbook in AWS: printed as a local run prints it, exit 0/1 as a local run."""
    ended = start_and_follow(session, topology, runbook, target, seen, options)
    if ended.record is None:
        _never_journaled(ended, options)
    print_run(ended.record, None, options.as_json)
    sys.exit(EXIT_DONE if ended.status == "SUCCEEDED" else EXIT_FAILED)


def drill_remotely(session: AwsSession, topology: Topology, runbook: str, params: dict[str, Any],
                   options: Options) -> EvidenceRecord:
    """A drill in the DR region's state machine: the evidence record its run sealed there, rebuilt from its journal
    by the drill's own evidence builder (exits 1 when the run never journaled)."""
    ended = start_and_follow(session, topology, runbook, topology.dr_region, params, options)
    if ended.record is None:
        _never_journaled(ended, options)
    return RUNBOOKS[runbook].evidence(ended.record, topology, bool(session.endpoint_url))


def recent_runs(aws: AwsSession, topology: Topology, regions: tuple[str, ...], limit: int) -> list[dict[str, Any]]:
    """The newest executions of every runbook in `regions`, newest first; a region that does not answer is a row."""
    rows: list[dict[str, Any]] = []
    for region in regions:
        sfn = aws.client("stepfunctions", region, probe=True)
        for runbook in deployed_in(region, topology.dr_region):
            try:
                executions = sfn.list_executions(stateMachineArn=state_machine_arn(topology, region, runbook),
                                                 maxResults=limit)["executions"]
            except (ClientError, BotoCoreError) as error:
                rows.append({"region": region, "runbook": runbook, "run_id": None, "status": "unknown",
                             "started": None, "rto_seconds": None, "rpo_seconds": None, "error": str(error)})
                continue
            rows += [_row(aws, topology, region, runbook, execution) for execution in executions]
    rows.sort(key=lambda row: row["started"] or "", reverse=True)
    return rows[:limit]


def _row(aws: AwsSession, topology: Topology, region: str, runbook: str, execution: dict[str, Any]) -> dict[str, Any]:
    """An execution with the RTO and RPO of its journal (in the region its run targets, which its name says)."""
    rto = rpo = None
    with contextlib.suppress(JournalNotFound, ValueError):
        target = region_of_run(execution["name"])
        run = Journal(aws, target, topology.in_region(target).runbook_table).load(execution["name"])
        record = RUNBOOKS[runbook].evidence(run, topology, bool(aws.endpoint_url))
        rto = record.rto.measured_seconds if record.rto else None
        rpo = record.rpo.measured_seconds if record.rpo else None
    return {"region": region, "runbook": runbook, "run_id": execution["name"], "status": execution["status"].lower(),
            "started": execution["startDate"].astimezone(UTC).isoformat(timespec="seconds"),
            "rto_seconds": rto, "rpo_seconds": rpo, "error": None}


@click.command()
@click.option("--region", "regions", multiple=True, default=DEFAULT_REGIONS, show_default=True,
              help="regions whose executions to list")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@aws_options
@refusals
def runs(options: Options, regions: tuple[str, ...], limit: int) -> None:
    """Recent runbook executions in AWS (both regions): outcome, RTO and RPO as their journals measured them."""
    for region in regions:
        check_region(region)
    aws = options.session()
    rows = recent_runs(aws, load_topology_anywhere(aws, options.env_name, regions), regions, limit)
    if options.as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("started (UTC)", "region", "runbook", "run id", "outcome", "RTO s", "RPO s")
    for row in rows:
        table.add_row(row["started"] or "-", row["region"], row["runbook"], row["run_id"] or "-",
                      row["status"] if not row["error"] else f"unknown: {row['error']}",
                      _number(row["rto_seconds"]), _number(row["rpo_seconds"]))
    out.print(table)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
