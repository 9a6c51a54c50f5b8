"""The game day run through its engine plan on a sandbox: both legs as child runs, the checks in DR, the verdict,
evidence from the journal, and what happens when a check, a leg or a process fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dr_runbooks.drills import gameday
from dr_runbooks.drills.gameday_plan import game_day, game_day_preflight, new_game_day_context, run_game_day
from dr_runbooks.drills.legs import switchover_leg
from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.journal import RunRecord
from dr_runbooks.engine.lock import RunLock
from dr_runbooks.evidence.record import EvidenceRecord
from dr_runbooks.evidence.store import EvidenceLog, LocalEvidenceDir
from dr_runbooks.observe import probes
from dr_runbooks.runbooks import driver
from dr_runbooks.session import AwsSession
from ehr_dr_sandbox.api import Sandbox

MFA_SERIAL = "arn:aws:iam::123456789012:mfa/drill"


def _writer(sandbox: Sandbox) -> str | None:
    cluster = probes.global_cluster(sandbox.client("rds", sandbox.topology.dr_region),
                                    sandbox.topology.global_cluster_id)
    writer = cluster.writer()
    return writer.region if writer else None


def _context(sandbox: Sandbox, aws: AwsSession, tmp_path: Path) -> RunContext:
    topology = sandbox.topology
    params = game_day_preflight(aws, topology, topology.dr_region, evidence=tmp_path / "evidence")
    session = aws.with_mfa(MFA_SERIAL, "123456", topology.dr_region)
    return new_game_day_context(session, topology, {**params, "evidence_dir": str(tmp_path / "evidence")},
                                "tester", tmp_path / "runs")


def _game_day(sandbox: Sandbox, aws: AwsSession, tmp_path: Path) -> tuple[RunRecord, EvidenceRecord]:
    run = run_game_day(_context(sandbox, aws, tmp_path))
    return run, gameday.game_day_evidence(run, sandbox.topology, sandbox=True)


def _chain(sandbox: Sandbox, tmp_path: Path) -> list[EvidenceRecord]:
    return EvidenceLog(sandbox.topology.env_name, [LocalEvidenceDir(tmp_path / "evidence")]).load_chain()


def test_a_game_day_through_the_plan_runs_both_legs_and_the_checks_and_records_them(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    topology = seeded.topology
    run, record = _game_day(seeded, aws, tmp_path)
    assert run.status == "succeeded", run.error
    assert _writer(seeded) == topology.primary_region
    assert set(run.steps) == {step.name for step in game_day().steps}
    legs = run.params["legs"]
    assert [run.steps[name].outputs["run_id"] for name in gameday.LEGS] == [legs[name] for name in gameday.LEGS]
    leg_records = _chain(seeded, tmp_path)
    assert [(leg.kind, leg.run_id, leg.to_region) for leg in leg_records] == [
        ("switchover", legs["switchover-to-dr"], topology.dr_region),
        ("switchover", legs["switchover-to-primary"], topology.primary_region)]
    assert (record.kind, record.run_id, record.from_region, record.to_region) == (
        "failover-drill", run.run_id, topology.primary_region, topology.dr_region)
    assert record.passed and not record.errors
    assert [check.what for check in record.verifications] == [
        f"leg 1: switchover to {topology.dr_region} ({legs['switchover-to-dr']})",
        f"leg 2: switchover to {topology.primary_region} ({legs['switchover-to-primary']})",
        f"chart archive s3://{topology.in_region(topology.primary_region).chart_bucket} replicates "
        f"s3://{topology.in_region(topology.dr_region).chart_bucket}",
        f"{topology.dr_region} serves reads and writes"]
    rtos = [leg.rto.measured_seconds for leg in leg_records if leg.rto]
    assert record.rto is not None and record.rto.measured_seconds == max(rtos)
    assert record.downtime_seconds == pytest.approx(sum(rtos))
    assert record.rpo is not None and record.rpo.measured_seconds == 0.0


def test_a_failed_check_in_dr_still_switches_back_and_fails_the_run_at_its_verdict(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable_chart(*_: Any) -> None:
        raise RuntimeError("chart charts/p0/pt0/s0.pdf read in us-west-1 does not match its scan row's SHA-256")

    monkeypatch.setattr(gameday, "serve", unreadable_chart)
    run, record = _game_day(seeded, aws, tmp_path)
    assert _writer(seeded) == seeded.topology.primary_region, "the switch back happened"
    assert run.steps["switchover-to-primary"].status == "succeeded"
    assert run.status == "failed"
    assert run.error is not None and run.error.startswith("step verdict failed: RuntimeError: serve-from-dr: ")
    assert not record.passed and record.outcome == "failed"
    assert [(error.step, error.message.split(":")[0]) for error in record.errors] == [
        ("serve-from-dr", "RuntimeError")]


def test_a_failed_first_leg_stops_the_game_day_with_nothing_else_moved(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    ctx = _context(seeded, aws, tmp_path)
    dr = seeded.topology.dr_region
    other = RunLock.of_environment(aws, seeded.topology, dr)
    other.acquire("20261122T000000Z-failover-us-west-1-000000", "someone else")  # taken after the preflight
    try:
        run = run_game_day(ctx)
    finally:
        other.release("20261122T000000Z-failover-us-west-1-000000")
    assert run.status == "failed"
    assert list(run.steps) == ["switchover-to-dr"]
    assert "LockHeld: run 20261122T000000Z-failover-us-west-1-000000 by someone else" in (
        run.steps["switchover-to-dr"].error or "")
    assert _writer(seeded) == seeded.topology.primary_region
    record = gameday.game_day_evidence(run, seeded.topology, sandbox=True)
    assert [check.result for check in record.verifications] == ["failed"]
    assert record.rto is not None and record.rto.measured_seconds is None and record.downtime_seconds == 0


def test_a_rerun_leg_with_an_unfinished_journal_is_resumed_not_restarted(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    ctx = _context(seeded, aws, tmp_path)
    ctx.journal.start(ctx.run)
    leg = ctx.for_step(game_day().step("switchover-to-dr"))
    first = switchover_leg(leg)
    child = driver.resume_context(aws, seeded.topology, first["run_id"], tmp_path / "runs")
    before = {name: record.started_at for name, record in child.run.steps.items()}
    # As if the process died before the child's last step: its journal says running, that step never ran.
    key = {"pk": {"S": f"run#{child.run.run_id}"}, "sk": {"S": "step#record-objectives"}}
    aws.client("dynamodb", child.run.target_region).delete_item(TableName=child.journal.table, Key=key)
    child.journal.start(child.run.model_copy(update={"status": "running", "ended_at": None}))
    again = switchover_leg(leg)
    after = driver.resume_context(aws, seeded.topology, first["run_id"], tmp_path / "runs").run
    assert again["run_id"] == first["run_id"] and after.status == "succeeded"
    assert {name: after.steps[name].started_at for name in before if name != "record-objectives"} == {
        name: started for name, started in before.items() if name != "record-objectives"}, "no step ran twice"
    assert after.steps["record-objectives"].started_at > before["record-objectives"]
    assert [record.run_id for record in _chain(seeded, tmp_path)] == [first["run_id"]], "its evidence is sealed once"
    assert _writer(seeded) == seeded.topology.dr_region
    back = ctx.for_step(game_day().step("switchover-to-primary"))
    assert switchover_leg(back)["status"] == "succeeded"
    assert _writer(seeded) == seeded.topology.primary_region
