"""`drctl`: the one command an on-call engineer or a scheduler runs.

Each concern adds its own click group or command in its own module; this module only assembles them, so the
entry point stays small and importing it stays cheap (no moto, no PostgreSQL unless a sandbox command runs).
"""

from __future__ import annotations

import click

from dr_runbooks.commands.backup import backup
from dr_runbooks.commands.evaluate import evaluate_command
from dr_runbooks.commands.oncall import failback, failover, resume, status, switchover, unlock
from dr_runbooks.drills.commands import drill
from dr_runbooks.evidence.commands import report
from dr_runbooks.lifecycle.commands import dispose, legal_hold, retention
from dr_runbooks.orchestration.commands import runs
from dr_runbooks.verify.commands import verify


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ehr-dr")
def cli() -> None:
    """Disaster-recovery runbooks and drills for the ehr-dr two-region records archive.

    Exit codes: 0 done; 1 the runbook ran and failed (see its journal and evidence); 2 refused before changing
    anything (bad input, missing MFA, unhealthy target, another run holds the lock).
    """


cli.add_command(report)
cli.add_command(verify)
cli.add_command(status)
cli.add_command(switchover)
cli.add_command(failover)
cli.add_command(failback)
cli.add_command(resume)
cli.add_command(unlock)
cli.add_command(drill)
cli.add_command(runs)
cli.add_command(backup)
cli.add_command(retention)
cli.add_command(legal_hold)
cli.add_command(dispose)
cli.add_command(evaluate_command)


def _add_sandbox_commands() -> None:
    """`drctl sandbox ...` and `drctl drill all --sandbox` come from the sandbox package, installed with the
    `sandbox` extra; a production install (or the Lambda package, which carries `dr_runbooks` only) has neither."""
    try:
        from ehr_dr_sandbox.cli import sandbox
        from ehr_dr_sandbox.main_job import all_drills
    except ImportError:
        return
    cli.add_command(sandbox)
    drill.add_command(all_drills)


_add_sandbox_commands()


def main() -> None:
    cli()
