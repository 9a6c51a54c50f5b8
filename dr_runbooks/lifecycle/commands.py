"""`drctl retention sync`, `drctl legal-hold place|release`, `drctl dispose [--dry-run]`: the records lifecycle.

Order of every changing command, as the on-call ones: validate the input, read the topology, find the writer's region,
open the MFA session there, check the request against the records (read-only: an unknown patient, a release with no
hold, a disposal of nobody past retention are refused, exit 2, nothing changed), confirm (or --yes), and only then
take the lock and run the plan; evidence at the end. Exit codes: 0 done; 1 ran and failed (journal and evidence say
why; `drctl dispose --resume RUN_ID` finishes an interrupted disposal, and sync and holds finish by running again);
2 refused before changing anything.

`clock` is where the time comes from (tests inject another): it decides whose retention has passed. S3 Object Lock
keeps its own clock, and a disposal also refuses any patient with a version still locked.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

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
from dr_runbooks.commands.render import Progress, err, out
from dr_runbooks.engine.lock import RunLock
from dr_runbooks.evidence.record import EvidenceRecord
from dr_runbooks.evidence.store import DEFAULT_EVIDENCE_DIR
from dr_runbooks.lifecycle import records, running
from dr_runbooks.lifecycle.plans import DISPOSAL, LEGAL_HOLD, LEGAL_RELEASE, RETENTION_SYNC
from dr_runbooks.lifecycle.policy import Clock, RetentionPolicy, system_clock
from dr_runbooks.lifecycle.steps import open_records
from dr_runbooks.runbooks import driver
from dr_runbooks.runbooks.canary import Database
from dr_runbooks.runbooks.estate import Refused, load_topology_anywhere
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology

#: The time source of every lifecycle decision (tests replace it).
clock: Clock = system_clock

yes_option = click.option("--yes", is_flag=True, help="skip the typed confirmation (never MFA)")
evidence_dir_option = click.option("--evidence-dir", type=click.Path(file_okay=False, path_type=Path),
                                   default=DEFAULT_EVIDENCE_DIR, show_default=True,
                                   help="the local evidence chain (drctl report reads it)")


def _estate(options: Options) -> tuple[AwsSession, Topology, str]:
    aws = options.session()
    topology = load_topology_anywhere(aws, options.env_name, DEFAULT_REGIONS)
    return aws, topology, running.writer_region(aws, topology)


def _records(aws: AwsSession, topology: Topology, region: str) -> Database:
    db = open_records(aws.client, topology, region)
    records.prepare(db)
    return db


def _run(session: AwsSession, topology: Topology, runbook: str, region: str, params: dict[str, Any],
         options: Options, evidence_dir: Path) -> None:
    ctx = running.new_context(session, topology, runbook, region, params, session.identity(region).arn)
    _finish(ctx, options, evidence_dir)


def _finish(ctx: Any, options: Options, evidence_dir: Path) -> None:
    run = running.run(ctx, Progress(quiet=options.as_json))
    record = driver.write_evidence(ctx, bool(options.endpoint_url), evidence_dir,
                                   running.evidence(run, ctx.topology, bool(options.endpoint_url)))
    _print(record, options)
    sys.exit(EXIT_DONE if record.passed else EXIT_FAILED)


def _print(record: EvidenceRecord, options: Options) -> None:
    if options.as_json:
        click.echo(json.dumps({"run_id": record.run_id, "kind": record.kind, "passed": record.passed,
                               "verifications": [check.model_dump(mode="json") for check in record.verifications],
                               "errors": [error.message for error in record.errors]}))
        return
    verdict = "[green]done[/]" if record.passed else "[red]FAILED[/]"
    out.print(f"{verdict} {record.kind} {record.run_id} (evidence #{record.sequence})")
    for check in record.verifications:
        out.print(f"  {check.result}: {check.what}\n    {check.detail}")
    for error in record.errors:
        out.print(f"  [red]error:[/] {error.message}")
    if record.kind == DISPOSAL and not record.passed:
        out.print(f"  finish it: drctl dispose --resume {record.run_id} (MFA); sync and holds: run them again")


@click.group("retention")
def retention() -> None:
    """Retention of the chart archive, following each patient's last visit."""


@retention.command("sync")
@click.option("--batch", is_flag=True, help="archive scale: one S3 Batch Operations job per region and retention date "
                                           "instead of a call per version")
@yes_option
@evidence_dir_option
@aws_options
@mfa_options
@refusals
def sync(options: Options, mfa: Mfa, batch: bool, yes: bool, evidence_dir: Path) -> None:
    """Extend the Object Lock retention of every chart version of the patients whose retention date moved (seen
    again, or never synced) to last visit + retention, in both regions. Never shortens; safe to run again."""
    aws, topology, region = _estate(options)
    session = mfa.session(aws, region, topology.role_arns.get("dr-operator"), "drctl retention sync")
    RunLock.of_environment(session, topology, region).check_free()
    confirm("extend retention", yes)
    _run(session, topology, RETENTION_SYNC, region, running.params_of(topology, clock(), batch=batch), options,
         evidence_dir)


@click.group("legal-hold")
def legal_hold() -> None:
    """Legal holds: a patient's charts and records kept whatever their retention, until released."""


def _hold_options(command: Any) -> Any:
    for option in reversed((
        click.option("--patient", "patient_id", required=True, help="the patient's id"),
        click.option("--reason", required=True, help="why (recorded with who and when in the records and evidence)"),
        yes_option, evidence_dir_option,
    )):
        command = option(command)
    return command


def _hold_request(options: Options, mfa: Mfa, patient_id: str, reason: str, what: str,
                  ) -> tuple[AwsSession, Topology, str, records.Patient]:
    if not reason.strip():
        raise Refused("--reason must say why: nothing changed")
    aws, topology, region = _estate(options)
    session = mfa.session(aws, region, topology.role_arns.get("dr-operator"), f"drctl legal-hold {what}")
    with _records(session, topology, region) as db:
        patient = records.patient(db, patient_id)
    if patient is None:
        raise Refused(f"no patient {patient_id!r} in the records: nothing changed")
    RunLock.of_environment(session, topology, region).check_free()
    return session, topology, region, patient


@legal_hold.command("place")
@_hold_options
@aws_options
@mfa_options
@refusals
def place(options: Options, mfa: Mfa, patient_id: str, reason: str, yes: bool, evidence_dir: Path) -> None:
    """Place a legal hold on every version of the patient's charts in both regions and mark the patient."""
    session, topology, region, patient = _hold_request(options, mfa, patient_id, reason, "place")
    confirm("hold", yes)
    _run(session, topology, LEGAL_HOLD, region, running.params_of(
        topology, clock(), patient_id=patient_id, reason=reason, prefix=patient.chart_prefix), options, evidence_dir)


@legal_hold.command("release")
@_hold_options
@aws_options
@mfa_options
@refusals
def release(options: Options, mfa: Mfa, patient_id: str, reason: str, yes: bool, evidence_dir: Path) -> None:
    """Release the patient's legal hold: clear it on every chart version in both regions, then in the records."""
    session, topology, region, patient = _hold_request(options, mfa, patient_id, reason, "release")
    if not patient.held:
        raise Refused(f"patient {patient_id} has no legal hold in force: nothing changed")
    confirm("release", yes)
    _run(session, topology, LEGAL_RELEASE, region, running.params_of(
        topology, clock(), patient_id=patient_id, reason=reason, prefix=patient.chart_prefix), options, evidence_dir)


def disposable(patients: list[records.Patient], policy: RetentionPolicy, today: Any) -> list[records.Patient]:
    """Patients whose retention date has passed and who are under no legal hold."""
    return [patient for patient in patients if not patient.held and patient.due(policy) <= today]


def _why_not(patient: records.Patient | None, patient_id: str, policy: RetentionPolicy, today: Any) -> str:
    if patient is None:
        return f"no patient {patient_id!r} in the records"
    if patient.held:
        return f"patient {patient_id} is under legal hold"
    return f"patient {patient_id} is retained until {patient.due(policy).isoformat()}"


@click.command("dispose")
@click.option("--dry-run", is_flag=True, help="list the patients that would be disposed of; change nothing")
@click.option("--patient", "patient_ids", multiple=True, help="only these patients (repeat); each must be disposable")
@click.option("--resume", "resume_run", metavar="RUN_ID", help="finish an interrupted disposal from its journal")
@yes_option
@evidence_dir_option
@aws_options
@mfa_options
@refusals
def dispose(options: Options, mfa: Mfa, dry_run: bool, patient_ids: tuple[str, ...], resume_run: str | None,
            yes: bool, evidence_dir: Path) -> None:
    """Dispose of the records of patients past retention and under no legal hold: every version of their charts in
    both regions and their rows, verified gone, with a certificate of destruction in the evidence chain."""
    aws, topology, region = _estate(options)
    policy, now = RetentionPolicy.of(topology.lifecycle), clock()
    if resume_run:
        session = mfa.session(aws, region, topology.role_arns.get("dr-operator"), "drctl dispose --resume")
        ctx = _resumable(session, topology, resume_run)
        confirm("dispose", yes)
        _finish(ctx, options, evidence_dir)
    session = aws if dry_run else mfa.session(aws, region, topology.role_arns.get("dr-operator"), "drctl dispose")
    with _records(session, topology, region) as db:
        found = records.patients(db, patient_ids or None)
    if patient_ids:
        by_id = {patient.patient_id: patient for patient in found}
        refused = [_why_not(by_id.get(pid), pid, policy, now.date()) for pid in patient_ids
                   if by_id.get(pid) not in disposable(found, policy, now.date())]
        if refused:
            raise Refused(f"{refused[0]}: nothing disposed of")
    chosen = disposable(found, policy, now.date())
    if dry_run:
        _print_selection(chosen, policy, now, options)
        return
    if not chosen:
        raise Refused(f"no patient is past retention and free of legal holds as of {now.date()}: nothing disposed of")
    RunLock.of_environment(session, topology, region).check_free()
    if not options.as_json:
        err.print(f"disposing of {len(chosen)} patient(s) in both regions: "
                  f"{', '.join(p.patient_id for p in chosen[:10])}{' ...' if len(chosen) > 10 else ''}")
    confirm("dispose", yes)
    _run(session, topology, DISPOSAL, region, running.params_of(
        topology, now, patients=[patient.patient_id for patient in chosen]), options, evidence_dir)


def _resumable(session: AwsSession, topology: Topology, run_id: str) -> Any:
    try:
        ctx = driver.resume_context(session, topology, run_id)
    except LookupError as error:
        raise Refused(str(error)) from None
    if ctx.run.runbook != DISPOSAL:
        raise Refused(f"run {run_id} is a {ctx.run.runbook} run, not a disposal")
    if ctx.run.status == "succeeded":
        raise Refused(f"run {run_id} already finished: nothing to resume")
    driver.lock_of(ctx).check_resumable(run_id)
    return ctx


def _print_selection(chosen: list[records.Patient], policy: RetentionPolicy, now: Any, options: Options) -> None:
    rows = [{"patient_id": patient.patient_id, "retained_until": patient.due(policy).isoformat()} for patient in chosen]
    if options.as_json:
        click.echo(json.dumps({"as_of": now.isoformat(), "patients": rows}))
        return
    out.print(f"{len(rows)} patient(s) past retention and under no legal hold as of {now.date()}:")
    for row in rows:
        out.print(f"  {row['patient_id']}  retained until {row['retained_until']}")


COMMANDS = (retention, legal_hold, dispose)
