"""How runs and the estate look: rich for people (progress per step, a final table), JSON for machines."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from dr_runbooks.engine.journal import RunRecord, StepRecord
from dr_runbooks.engine.plan import Step
from dr_runbooks.observe.estate import EstateReport
from dr_runbooks.readiness.scheduled import LAST_EVALUATION_WINDOW

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


class Progress:
    """A line per step as it starts and ends (on stderr, so stdout stays the result)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def step_started(self, step: Step) -> None:
        if not self.quiet:
            err.print(f"[cyan]→[/] {step.name}: {step.description}")

    def step_ended(self, step: Step, record: StepRecord) -> None:
        if self.quiet:
            return
        seconds = (record.ended_at or record.started_at) - record.started_at
        mark = "[green]✓[/]" if record.status == "succeeded" else "[red]✗[/]"
        err.print(f"{mark} {step.name} ({seconds:.1f} s, {record.call_count} AWS calls){_error(record)}")


def _error(record: StepRecord) -> str:
    return f": {record.error}" if record.error else ""


def run_summary(run: RunRecord, evidence: str | None) -> dict[str, Any]:
    objectives = run.steps.get("record-objectives")
    return {
        "run_id": run.run_id,
        "runbook": run.runbook,
        "target_region": run.target_region,
        "status": run.status,
        "error": run.error,
        "seconds": round((run.ended_at or run.started_at) - run.started_at, 3),
        "objectives": objectives.outputs if objectives else None,
        "dns": run.steps["confirm-dns"].outputs if "confirm-dns" in run.steps else None,
        "evidence": evidence,
        "steps": {
            name: {
                "status": step.status,
                "seconds": round((step.ended_at or step.started_at) - step.started_at, 3),
                "aws_calls": step.call_count,
                "error": step.error,
            }
            for name, step in run.steps.items()
        },
    }


def print_run(run: RunRecord, evidence: str | None, as_json: bool) -> None:
    summary = run_summary(run, evidence)
    if as_json:
        print(json.dumps(summary, default=str))
        return
    table = Table(title=f"{run.runbook} to {run.target_region}: {run.status.upper()} ({run.run_id})")
    for column in ("step", "status", "seconds", "AWS calls", "error"):
        table.add_column(column)
    for name, step in sorted(summary["steps"].items(), key=lambda item: run.steps[item[0]].started_at):
        table.add_row(name, step["status"], f"{step['seconds']:.1f}", str(step["aws_calls"]), step["error"] or "")
    out.print(table)
    if summary["objectives"]:
        rto, rpo = summary["objectives"].get("rto_seconds"), summary["objectives"].get("rpo_seconds")
        out.print(f"RTO measured: {_seconds(rto)}   RPO measured: {_seconds(rpo)}")
    if summary["dns"] and "how" in summary["dns"]:
        dns = summary["dns"]
        verb = "confirmed" if dns["confirmed"] else "expected"
        out.print(f"DNS {verb}: {dns['answer_region'] or 'unknown'} ({dns['how']})")
    if evidence:
        out.print(f"evidence: {evidence}")


def _seconds(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.1f} s"


def print_dns_forecast(preflight: dict[str, Any]) -> None:
    """The failover preflight's DNS line (stderr): red when DNS would stay on the source. A warning, not a refusal:
    the gate that keeps it there cannot be changed from the target anyway (docs/runbooks.md, "Traffic gates")."""
    if preflight.get("dns_forecast"):
        colour = {True: "green", None: "yellow", False: "bold red"}[preflight.get("dns_lets_target_in")]
        err.print(f"[{colour}]{preflight['dns_forecast']}[/]")


def print_plan(
    runbook: str, target: str, steps: list[dict[str, Any]], preflight: dict[str, Any], as_json: bool
) -> None:
    if as_json:
        print(json.dumps({"dry_run": True, "runbook": runbook, "target_region": target, "preflight": preflight,
                          "plan": steps}, default=str))
        return
    out.print(f"[bold]{runbook} to {target}[/]: dry run, nothing will change")
    out.print(f"observed: {preflight}")
    for step in steps:
        after = f" (after {', '.join(step['depends_on'])})" if step["depends_on"] else ""
        kind = "[yellow]changes[/]" if step["changes"] else "reads"
        out.print(f"• {step['step']}{after} [{kind}]: {step['description']}")
        for call in step["calls"]:
            out.print(f"    {call}")


def print_status(report: EstateReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps({**report.model_dump(), "verdict": report.verdict}, default=str))
        return
    table = Table(title=f"ehr-dr {report.env_name}: observed in {report.seconds:.1f} s")
    table.add_column("")
    for region, state in report.regions.items():
        table.add_column(f"{region} ({state.home})" + ("" if state.reachable else " UNREACHABLE"))
    rows = {
        "writes": lambda s: _yes_no(s.region == report.writer_region) if s.reachable else "?",
        "cluster": lambda s: _probe(s, "cluster_status"),
        "Aurora lag": lambda s: _lag(s, report.rpo_seconds),
        "S3 replication": lambda s: _replication(s),
        "last backup": lambda s: _backups(s, "last_backup"),
        "last cross-region copy": lambda s: _backups(s, "last_copy"),
        "alarms firing": lambda s: _alarms(s),
        "last evaluation": lambda s: _evaluation(s),
    }
    for label, cell in rows.items():
        table.add_row(label, *(cell(state) if state.reachable else "-" for state in report.regions.values()))
    out.print(table)
    for region, state in report.regions.items():
        if not state.reachable:
            first = next(probe.error for probe in state.probes.values() if probe.error)
            out.print(f"[bold red]{region} is unreachable:[/] {first}")
    out.print(f"traffic: {report.dns}")
    for region, gate in report.gates.items():
        out.print(f"  gate of {region}: {gate.describe()}")
    if report.failover_dns:
        out.print(report.failover_dns)
    if report.dr_freshness:
        out.print(_freshness(report.dr_freshness, report.observed_at, report.rpo_seconds))
    colour = "green" if report.ready else "red"
    out.print(f"[bold {colour}]{report.verdict}[/]")


def _freshness(fresh: dict[str, Any], now: float, rpo: float) -> str:
    """One line: how old the newest heartbeat row and object the DR region holds are, and what a failover loses."""
    def age(found: str | None, probe: str) -> str:
        if found is None:
            return f"unknown ({fresh['errors'][probe]})" if probe in fresh["errors"] else "none"
        return f"{max(now - datetime.fromisoformat(found).timestamp(), 0):.0f} s old"

    loss = fresh["expected_data_loss_seconds"]
    expected = "unknown (nothing bounds it)" if loss is None else f"up to {loss:.0f} s of writes (RPO {rpo:.0f} s)"
    return (f"DR data in {fresh['region']}: newest heartbeat row {age(fresh['newest_row_at'], 'newest_row')}, "
            f"object {age(fresh['newest_object_at'], 'newest_object')}; a failover now would lose {expected}")


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _probe(state: Any, name: str) -> str:
    probe = state.probes.get(name)
    if probe is None:
        return "?"
    return f"unknown ({probe.error})" if probe.error else str(probe.value)


def _lag(state: Any, rpo: float) -> str:
    probe = state.probes.get("lag_seconds")
    if probe is None or probe.error:
        return _probe(state, "lag_seconds")
    return "n/a (writer or no data)" if probe.value is None else f"{probe.value:.1f} s (RPO {rpo:.0f} s)"


def _replication(state: Any) -> str:
    probe = state.probes.get("s3_replication")
    if probe is None or probe.error:
        return _probe(state, "s3_replication")
    return "; ".join(
        f"{rule['rule_id']} {rule['status']}: pending {rule['pending_operations']}, failed "
        f"{rule['failed_operations']}, latency {rule['latency_seconds']}"
        for rule in probe.value
    ) or "none"


def _backups(state: Any, key: str) -> str:
    probe = state.probes.get("backups")
    if probe is None or probe.error:
        return _probe(state, "backups")
    return probe.value.get(key) or "none"


def _alarms(state: Any) -> str:
    probe = state.probes.get("alarms")
    if probe is None or probe.error:
        return _probe(state, "alarms")
    return ", ".join(sorted(name for name, value in probe.value.items() if value == "ALARM")) or "none"


def _evaluation(state: Any) -> str:
    """The hourly readiness evaluation this region last published (`drctl evaluate` on AWS): verdict and age."""
    probe = state.probes.get("last_evaluation")
    if probe is None or probe.error:
        return _probe(state, "last_evaluation")
    if probe.value is None:
        return f"none in {LAST_EVALUATION_WINDOW.total_seconds() / 3600:.0f} h"
    verdict = "READY" if probe.value["ready"] else "NOT READY"
    return f"{verdict}, {probe.value['age_seconds'] / 60:.0f} min ago"
