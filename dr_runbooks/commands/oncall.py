"""`drctl status | switchover | failover | failback | resume | unlock`: what on-call types (`resume` also finishes a
killed restore drill).

Order of every changing command: validate the input, read the topology in the target region, open the MFA session,
run the read-only preflight, confirm, and only then take the lock and start the journal. Each refusal before that last
point exits 2 with nothing changed.
"""

from __future__ import annotations

import sys
import time
from typing import Any, NoReturn

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
from dr_runbooks.commands.render import Progress, err, print_dns_forecast, print_plan, print_run, print_status
from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.journal import region_of_run
from dr_runbooks.engine.lock import RunLock
from dr_runbooks.engine.runner import execute
from dr_runbooks.evidence.store import DEFAULT_EVIDENCE_DIR
from dr_runbooks.observe.estate import observe_estate
from dr_runbooks.orchestration.catalog import RUNBOOKS
from dr_runbooks.orchestration.commands import run_remotely
from dr_runbooks.runbooks import driver
from dr_runbooks.runbooks.estate import Refused, check_region, load_topology, load_topology_anywhere
from dr_runbooks.runbooks.plans import PLANS
from dr_runbooks.runbooks.preflight import PREFLIGHTS
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology

DEFAULT_REGIONS = ("us-east-1", "us-west-1")


@click.command()
@click.option("--region", "regions", multiple=True, default=DEFAULT_REGIONS, show_default=True,
              help="where to read the topology from (the first that answers)")
@aws_options
@refusals
def status(options: Options, regions: tuple[str, ...]) -> None:
    """Both regions: who writes, lag, replication, backups, alarms, traffic, and whether a failover is ready."""
    for region in regions:
        check_region(region)
    aws = options.session()
    topology = load_topology_anywhere(aws, options.env_name, regions)
    print_status(observe_estate(aws, topology), options.as_json)


def _runbook_command(runbook: str, help_text: str, data_loss: bool = False) -> click.Command:
    @click.option("--to", "to_region", required=True, help="the region to move to")
    @click.option("--dry-run", is_flag=True, help="print the plan and the exact calls; change nothing")
    @click.option("--yes", is_flag=True, help="skip the typed confirmation (never MFA or --accept-data-loss)")
    @click.option("--remote", is_flag=True, help="run it in AWS: start its state machine in --to and follow it")
    @aws_options
    @mfa_options
    @refusals
    def command(options: Options, mfa: Mfa, to_region: str, dry_run: bool, yes: bool, **extra: Any) -> None:
        _launch(runbook, options, mfa, to_region, dry_run, yes, **extra)

    command.__doc__ = help_text
    if data_loss:
        command = click.option("--accept-data-loss", is_flag=True,
                               help="acknowledge the data loss shown (since the newest heartbeat the target holds)")(
            command)
        command = click.option("--accept-loss-beyond-rpo", is_flag=True,
                               help="also acknowledge a loss beyond the RPO, or one nothing bounds (no heartbeat)")(
            command)
    return click.command(name=runbook, help=help_text)(command)


def _launch(runbook: str, options: Options, mfa: Mfa, to_region: str, dry_run: bool, yes: bool,
            remote: bool = False, accept_data_loss: bool = False, accept_loss_beyond_rpo: bool = False) -> None:
    check_region(to_region)
    aws = options.session()
    topology = load_topology(aws, options.env_name, to_region)
    if dry_run:
        seen = PREFLIGHTS[runbook](aws, topology, to_region)
        ctx = driver.new_context(aws, topology, runbook, to_region, seen, operator="dry-run")
        print_plan(runbook, to_region, driver.describe(PLANS[runbook](), ctx), seen, options.as_json)
        return
    session = mfa.session(aws, to_region, topology.role_arns.get("dr-operator"), f"drctl {runbook}")
    RunLock.of_environment(session, topology, to_region).check_free()
    seen = _checks(runbook, session, topology, to_region, yes, accept_data_loss, accept_loss_beyond_rpo)
    if remote:
        run_remotely(session, topology, runbook, to_region, seen, options)
    ctx = driver.new_context(session, topology, runbook, to_region, seen, session.identity(to_region).arn)
    _run_to_end(ctx, options)


def _checks(runbook: str, session: AwsSession, topology: Topology, to_region: str, yes: bool, accept_data_loss: bool,
            accept_loss_beyond_rpo: bool, seen: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a run needs before it changes anything, new or resumed alike: the preflight on the current state (unless
    `seen` is given), the data loss acknowledged (a failover), the typed confirmation or --yes. Returns what the
    operator was shown, for the journal."""
    if seen is None:
        seen = PREFLIGHTS[runbook](session, topology, to_region)
    print_dns_forecast(seen)
    if runbook == "failover":
        _acknowledge_loss(seen, accept_data_loss, accept_loss_beyond_rpo, yes)
    confirm(runbook, yes)
    return seen


def _acknowledge_loss(seen: dict[str, Any], accepted: bool, beyond_rpo_accepted: bool, yes: bool) -> None:
    """Show the loss the newest heartbeat the target holds bounds; a loss beyond the RPO (or one nothing bounds) needs
    its own acknowledgment on top of the ordinary one. `--yes` replaces neither."""
    loss, rpo, lag = seen["expected_data_loss_seconds"], seen["rpo_seconds"], seen["observed_lag_seconds"]
    lag_line = "not reported" if lag is None else f"{lag:.1f} s"
    if loss is None:
        why = seen.get("row_error") or "it holds no heartbeat or canary row and object"
        err.print(f"[bold red]expected data loss: unknown[/]: nothing bounds it in the target ({why}); "
                  f"Aurora lag last reported: {lag_line}")
    else:
        err.print(f"[bold yellow]expected data loss:[/] up to {loss:.1f} s of writes (those after "
                  f"{seen['loss_bound_at']}, the older of the newest heartbeat row {seen['newest_row_at']} and "
                  f"object {seen['newest_object_at']} the target holds); RPO {rpo} s; Aurora lag last reported: "
                  f"{lag_line}")
    if (loss is None or loss > rpo) and not beyond_rpo_accepted:
        if yes:
            raise Refused("the expected loss is beyond the RPO or unknown; --yes does not accept it: add "
                          "--accept-loss-beyond-rpo")
        confirm("accept loss beyond rpo", yes=False)
    if accepted:
        return
    if yes:
        raise Refused("--yes does not accept data loss: add --accept-data-loss")
    confirm("accept data loss", yes=False)


switchover = _runbook_command("switchover", "Planned move of the writer and traffic to --to, no data loss.")
failover = _runbook_command(
    "failover", "Unplanned: the other region is gone. Calls only --to's APIs; shows and needs the data loss.",
    data_loss=True,
)
failback = _runbook_command("failback", "Re-protect --to (the region that came back) as an up-to-date secondary.")


@click.command()
@click.argument("run_id")
@click.option("--yes", is_flag=True, help="skip the typed confirmation (never MFA or --accept-data-loss)")
@click.option("--accept-data-loss", is_flag=True, help="a failover: acknowledge the data loss shown")
@click.option("--accept-loss-beyond-rpo", is_flag=True,
              help="a failover: also acknowledge a loss beyond the RPO, or one nothing bounds")
@aws_options
@mfa_options
@refusals
def resume(options: Options, mfa: Mfa, run_id: str, yes: bool, accept_data_loss: bool,
           accept_loss_beyond_rpo: bool) -> None:
    """Continue a run (an on-call runbook or a drill) from its journal (in the region its id names): steps already
    done are not redone; a step that was waiting on AWS continues from its checkpoint. An on-call run is checked as a
    new run is (preflight on the current state, data loss, confirmation), and refused if the estate moved on."""
    region = region_of_run(run_id)
    aws = options.session()
    topology = load_topology(aws, options.env_name, region)
    session = mfa.session(aws, region, topology.role_arns.get("dr-operator"), "drctl resume")
    try:
        ctx = driver.resume_context(session, topology, run_id)
    except LookupError as error:
        raise Refused(str(error)) from None
    if ctx.run.status == "succeeded":
        print_run(ctx.run, None, options.as_json)
        return
    if ctx.run.runbook not in RUNBOOKS:
        raise Refused(f"run {run_id} is a {ctx.run.runbook} run; drctl resume resumes {', '.join(RUNBOOKS)} runs")
    if RUNBOOKS[ctx.run.runbook].plan().locks:
        driver.lock_of(ctx).check_resumable(run_id)
    if ctx.run.runbook in PREFLIGHTS:
        _recheck(ctx, yes, accept_data_loss, accept_loss_beyond_rpo)
    _run_to_end(ctx, options)


def _recheck(ctx: RunContext, yes: bool, accept_data_loss: bool, accept_loss_beyond_rpo: bool) -> None:
    """A resumed on-call run passes a new run's checks on the current state, or is refused with nothing changed.

    Refused when the estate moved on in a way the run's own steps do not explain. Once the run's writer step started,
    the preflight's checks before a move (the target is a healthy, lagging-little secondary) no longer apply: what the
    run showed at its start is shown again. What the operator was shown is journaled with the run (`resumes`)."""
    run = ctx.run
    changed = driver.moved_on(ctx)
    if changed:
        raise Refused(changed)
    shown = {key: value for key, value in run.params.items() if key not in ("changing_steps", "resumes")}
    seen = _checks(run.runbook, ctx.aws, ctx.topology, run.target_region, yes, accept_data_loss,
                   accept_loss_beyond_rpo, shown if driver.moved_writer(run) else None)
    run.params["resumes"] = [*run.params.get("resumes", []), {
        "at": time.time(), "operator": ctx.aws.identity(run.target_region).arn, "seen": seen,
        "preflight": "not re-run: the run's own steps moved the writer" if driver.moved_writer(run) else "passed"}]


def _run_to_end(ctx: RunContext, options: Options) -> NoReturn:
    """Continue any runbook's run as its own command runs it: its plan from where it stopped (its lock if it takes
    one), the rule it keeps however it ends (a restore drill's teardown), its evidence in the target region's
    bucket and the local chain. Exit 0 when an on-call run succeeded, or a drill passed."""
    entry = RUNBOOKS[ctx.run.runbook]
    plan = entry.plan()
    run = execute(plan, ctx, driver.lock_of(ctx) if plan.locks else None, Progress(quiet=options.as_json))
    if entry.after is not None:
        entry.after(ctx)
    evidence = entry.evidence(run, ctx.topology, bool(options.endpoint_url))
    sealed = None
    try:
        sealed = driver.write_evidence(ctx, bool(options.endpoint_url), DEFAULT_EVIDENCE_DIR, evidence).run_id
    except Exception as error:  # the run happened either way; say the evidence is missing rather than hide the run
        err.print(f"[red]evidence not written:[/] {error}")
    print_run(run, sealed, options.as_json)
    passed = run.status == "succeeded" if run.runbook in PLANS else bool(sealed) and evidence.passed
    sys.exit(EXIT_DONE if passed else EXIT_FAILED)


@click.command()
@click.option("--run-id", required=True, help="the run holding the lock (as `drctl resume` or a refusal named it)")
@click.option("--region", "regions", multiple=True,
              help="where to read the topology and open the MFA session (default: the run's region, then the others)")
@aws_options
@mfa_options
@refusals
def unlock(options: Options, mfa: Mfa, run_id: str, regions: tuple[str, ...]) -> None:
    """Break a dead run's runbook lock in every region that answers: only the named run's, and only once its lease
    expired, so a race never breaks someone else's or a live run's."""
    region, topology = _topology_from(options, (*regions, region_of_run(run_id), *DEFAULT_REGIONS))
    session = mfa.session(options.session(), region, topology.role_arns.get("dr-operator"), "drctl unlock")
    broken = RunLock.of_environment(session, topology, region).break_lock(run_id)
    if not broken:
        raise Refused(f"the lock of {run_id} could not be broken (it changed hands, or no region answered)")
    err.print(f"lock of {run_id} broken in {', '.join(broken)}")


def _topology_from(options: Options, regions: tuple[str, ...]) -> tuple[str, Topology]:
    """The first of `regions` (in order, each once) that answers with the topology: a dark region costs seconds."""
    aws = options.session()
    reasons: list[str] = []
    for region in dict.fromkeys(regions):
        try:
            return region, load_topology(aws, options.env_name, region)
        except Refused as refused:
            reasons.append(str(refused))
    raise Refused("; ".join(reasons))


COMMANDS = (status, switchover, failover, failback, resume, unlock)
