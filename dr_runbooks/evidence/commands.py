"""`drctl report`: evidence records of an environment rendered as Markdown, self-contained HTML and JSON.

Exit codes follow drctl's: 0 report written; 1 report written but the evidence chain is broken (tampering or loss:
the report says where); 2 refused (bad input, no records), nothing written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console

from dr_runbooks.config import ConfigError, DeploymentConfig
from dr_runbooks.evidence.chain import EvidenceError, verify_chain
from dr_runbooks.evidence.record import EvidenceRecord
from dr_runbooks.evidence.report import build_report, write_report
from dr_runbooks.evidence.store import DEFAULT_EVIDENCE_DIR, EvidenceLog, LocalEvidenceDir

DEFAULT_REPORT_DIR = Path(".ehr-dr/reports")


def _environment_and_target(config_path: Path, env_name: str | None) -> tuple[str, float]:
    """The environment to report on and its availability target: from the deployment config when there is one."""
    default_target = DeploymentConfig.model_fields["availability_target"].default
    if not config_path.exists():
        if env_name is None:
            raise click.UsageError(f"no {config_path}: name the environment with --env")
        return env_name, default_target
    try:
        config = DeploymentConfig.from_cdk_json(config_path, {"env_name": env_name} if env_name else None)
    except ConfigError as error:
        raise click.UsageError(f"{config_path}: {error.problems[0]}") from None
    return config.env_name, config.availability_target


def _select(chain: list[EvidenceRecord], run_ids: tuple[str, ...], last: int, everything: bool) -> list[EvidenceRecord]:
    if everything:
        return chain
    if run_ids:
        by_id = {record.run_id: record for record in chain}
        unknown = [run_id for run_id in run_ids if run_id not in by_id]
        if unknown:
            raise click.UsageError(f"no evidence record for run {', '.join(unknown)}")
        return [by_id[run_id] for run_id in run_ids]
    return chain[-last:]


@click.command("report")
@click.option("--env", "env_name", help="environment (default: env_name of --config)")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=Path("cdk.json"), show_default=True,
              help="deployment config (cdk.json): environment and availability target")
@click.option("--evidence-dir", type=click.Path(path_type=Path), default=DEFAULT_EVIDENCE_DIR, show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=DEFAULT_REPORT_DIR, show_default=True)
@click.option("--run", "run_ids", multiple=True, help="report on this run (repeatable)")
@click.option("--last", type=click.IntRange(min=1), default=1, show_default=True, help="report on the newest N runs")
@click.option("--all", "everything", is_flag=True, help="report on every run of the environment")
@click.option("--as-of", type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
              help="UTC time the availability budget is computed for (default: now)")
def report(
    env_name: str | None,
    config_path: Path,
    evidence_dir: Path,
    out_dir: Path,
    run_ids: tuple[str, ...],
    last: int,
    everything: bool,
    as_of: datetime | None,
) -> None:
    """Render evidence records as a Markdown report and a self-contained HTML page, with the JSON beside them."""
    environment, target = _environment_and_target(config_path, env_name)
    try:
        chain = EvidenceLog(environment, [LocalEvidenceDir(evidence_dir)]).load_chain()
    except EvidenceError as error:
        raise click.UsageError(str(error)) from None
    if not chain:
        raise click.UsageError(f"no evidence records for environment {environment!r} in {evidence_dir}")
    selected = _select(chain, run_ids, last, everything)
    problems = verify_chain(chain)
    moment = (as_of.replace(tzinfo=UTC) if as_of else datetime.now(UTC))
    files = write_report(build_report(chain, selected, problems, target, moment), out_dir)
    console = Console(stderr=True)
    for problem in problems:
        console.print(f"[red]evidence chain broken:[/red] {problem}", highlight=False)
    click.echo(f"{files.html}\n{files.markdown}\n{files.json}")
    if problems:
        raise SystemExit(1)
