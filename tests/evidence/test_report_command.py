"""`drctl report` as a user runs it: which records, where the files go, and the exit codes."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from dr_runbooks.cli import cli
from dr_runbooks.evidence.store import EvidenceLog, LocalEvidenceDir, object_name


@pytest.fixture
def workdir(tmp_path, make_record):
    """A cdk.json for environment demo at 99.9%, and three runs of it in the evidence dir."""
    (tmp_path / "cdk.json").write_text(json.dumps({"context": {
        "env_name": "demo", "account": "123456789012", "availability_target": 0.999, "rto_minutes": 15,
    }}))
    log = EvidenceLog("demo", [LocalEvidenceDir(tmp_path / "evidence")])
    for run_id in ("r1", "r2", "r3"):
        log.append(make_record(run_id=run_id))
    return tmp_path


def _report(workdir, *args):
    return CliRunner().invoke(cli, [
        "report", "--config", str(workdir / "cdk.json"), "--evidence-dir", str(workdir / "evidence"),
        "--out", str(workdir / "reports"), "--as-of", "2026-11-20", *args,
    ])


def test_the_newest_run_is_reported_by_default_and_paths_are_printed(workdir):
    result = _report(workdir)
    assert result.exit_code == 0, result.output
    expected = [str(workdir / "reports" / f"demo-r3.{suffix}") for suffix in ("html", "md", "json")]
    assert result.output.splitlines() == expected


def test_named_runs_are_reported(workdir):
    result = _report(workdir, "--run", "r1", "--run", "r2")
    assert result.exit_code == 0, result.output
    assert (workdir / "reports" / "demo-records-0-1.md").exists()


def test_the_availability_target_comes_from_the_deployment_config(workdir):
    _report(workdir)
    assert "## Availability budget (99.90%)" in (workdir / "reports" / "demo-r3.md").read_text()


def test_an_unknown_run_is_refused_and_nothing_written(workdir):
    result = _report(workdir, "--run", "nope")
    assert result.exit_code == 2
    assert "no evidence record for run nope" in result.output
    assert not (workdir / "reports").exists()


def test_an_environment_without_records_is_refused(workdir):
    result = _report(workdir, "--env", "other")
    assert result.exit_code == 2
    assert "no evidence records for environment 'other'" in result.output


def test_without_a_config_the_environment_must_be_named(workdir):
    result = CliRunner().invoke(cli, ["report", "--config", str(workdir / "missing.json")])
    assert result.exit_code == 2
    assert "name the environment with --env" in result.output


def test_a_tampered_chain_is_reported_and_exits_1(workdir):
    chain = EvidenceLog("demo", [LocalEvidenceDir(workdir / "evidence")]).load_chain()
    (workdir / "evidence" / object_name(chain[0])).unlink()
    result = _report(workdir, "--all")
    assert result.exit_code == 1
    assert "evidence chain broken: record 1 (run r2) is at position 0" in result.output
    assert "The evidence chain is BROKEN" in (workdir / "reports" / "demo-records-1-2.md").read_text()
