"""Replication verification as an engine plan: its shape, its preflight, and runs on the sandbox in sync and with
replication paused (differences journaled, the verdict fails, the evidence says what and how many)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from runbooks.conftest import MFA

from dr_runbooks.cli import cli
from dr_runbooks.engine.journal import Journal, RunRecord
from dr_runbooks.evidence.record import EvidenceRecord
from dr_runbooks.runbooks.estate import Refused
from dr_runbooks.session import AwsSession, boto_session
from dr_runbooks.verify.plan import (
    new_verify_context,
    run_verify_replication,
    verify_evidence,
    verify_preflight,
    verify_replication,
)
from ehr_dr_sandbox.api import SANDBOX_CREDENTIALS, Sandbox


def test_the_plan_compares_then_judges_through_the_apis_only_without_a_lock() -> None:
    plan = verify_replication()
    assert (plan.runbook, plan.locks) == ("verify-replication", False)
    assert plan.graph() == {"compare-archives": (), "verdict": ("compare-archives",)}
    assert all(step.database is None and step.child is None and not step.changes for step in plan.steps)
    plan.verify_actions()


@pytest.fixture(scope="module")
def aws(sandbox: Sandbox) -> AwsSession:
    boto = boto_session(aws_access_key_id=SANDBOX_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=SANDBOX_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                        region_name=sandbox.config.primary_region)
    return AwsSession(boto, endpoint_url=sandbox.endpoint_url)


@pytest.fixture(scope="module")
def charts(sandbox: Sandbox) -> Sandbox:
    source = sandbox.topology.in_region(sandbox.topology.primary_region).chart_bucket
    s3 = sandbox.client("s3", sandbox.topology.primary_region)
    for number in range(6):
        s3.put_object(Bucket=source, Key=f"charts/p{number % 2}/pt{number}/s{number}.pdf",
                      Body=f"%PDF {number}".encode(), ChecksumAlgorithm="SHA256")
    sandbox.action("replication-drain", timeout=10)
    return sandbox


def _verify(sandbox: Sandbox, aws: AwsSession, tmp_path: Path) -> tuple[RunRecord, EvidenceRecord]:
    ctx = new_verify_context(aws, sandbox.topology, sandbox.topology.dr_region, "tester", tmp_path)
    run = run_verify_replication(ctx)
    return run, verify_evidence(run, sandbox.topology, sandbox=True)


def test_the_preflight_compares_the_observed_writer_with_its_replica(charts: Sandbox, aws: AwsSession) -> None:
    topology = charts.topology
    params = verify_preflight(aws, topology, topology.dr_region)
    assert (params["writer_region"], params["writer_observed"], params["replica_region"]) == (
        topology.primary_region, True, topology.dr_region)
    assert params["writer_bucket"] == topology.in_region(topology.primary_region).chart_bucket


def test_the_preflight_refuses_a_region_the_estate_does_not_have(charts: Sandbox, aws: AwsSession) -> None:
    with pytest.raises(Refused, match="eu-west-1"):
        verify_preflight(aws, charts.topology, "eu-west-1")


def test_archives_in_sync_pass_and_their_evidence_counts_the_keys(charts: Sandbox, aws: AwsSession,
                                                                  tmp_path: Path) -> None:
    run, record = _verify(charts, aws, tmp_path)
    assert run.status == "succeeded", run.error
    compared = run.steps["compare-archives"].outputs
    assert compared["compared"] >= 6 and compared["difference_counts"] == {} and compared["sample"] == []
    assert record.kind == "verify-replication" and record.passed
    assert record.from_region == charts.topology.primary_region and record.to_region == charts.topology.dr_region
    assert record.verifications[0].checked == compared["compared"]


def test_paused_replication_is_journaled_as_differences_and_fails_the_verdict(
        charts: Sandbox, aws: AwsSession, sandbox_faults, tmp_path: Path) -> None:
    topology = charts.topology
    sandbox_faults.pause_replication()
    source = topology.in_region(topology.primary_region).chart_bucket
    for key in ("charts/p1/pt100/late-a.pdf", "charts/p0/pt101/late-b.pdf"):
        charts.client("s3", topology.primary_region).put_object(Bucket=source, Key=key, Body=b"late",
                                                                ChecksumAlgorithm="SHA256")
    run, record = _verify(charts, aws, tmp_path)
    compared = run.steps["compare-archives"]
    assert compared.status == "succeeded", "differences are a finding, not a failed step"
    assert compared.outputs["difference_counts"] == {"missing-on-replica": 2}
    assert [d["key"] for d in compared.outputs["sample"]] == ["charts/p0/pt101/late-b.pdf",
                                                              "charts/p1/pt100/late-a.pdf"]
    assert run.status == "failed"
    assert run.error == (f"step verdict failed: RuntimeError: s3://{topology.in_region(topology.dr_region).chart_bucket}"
                         f" differs from s3://{source}: missing-on-replica: 2 (e.g. missing-on-replica "
                         "charts/p0/pt101/late-b.pdf)")
    assert not record.passed and record.verifications[0].mismatched == 2
    assert [error.message for error in record.errors] == ["2 keys missing-on-replica"]
    sandbox_faults.resume_replication()
    charts.action("replication-drain", timeout=10)


def test_drctl_resume_finishes_an_interrupted_verification_and_seals_its_evidence(
    charts: Sandbox, aws: AwsSession, sandbox_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any orchestrated runbook resumes from its journal, a drill as well as an on-call run."""
    monkeypatch.chdir(tmp_path)
    ctx = new_verify_context(aws, charts.topology, charts.topology.dr_region, "tester", tmp_path)
    ctx.journal.start(ctx.run)  # the process died before its first step
    result = CliRunner().invoke(cli, ["resume", ctx.run.run_id, "--output", "json", *MFA], env=sandbox_env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    resumed = Journal(aws, ctx.run.target_region, ctx.target.runbook_table, tmp_path / "peek").load(ctx.run.run_id)
    assert {name: step.status for name, step in resumed.steps.items()} == {"compare-archives": "succeeded",
                                                                           "verdict": "succeeded"}
    assert list((tmp_path / ".ehr-dr" / "evidence" / charts.topology.env_name).glob(f"*{ctx.run.run_id}.json"))
