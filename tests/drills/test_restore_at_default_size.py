"""A restore drill at the sandbox's default seed size (1,000 patients, 5,000 chart files: more than one listing page
of versions in every bucket), twice in a row, as `drctl drill restore` runs it: each passes, tears its scratch down
and leaves evidence, so the second finds nothing to clean up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dr_runbooks.cli import cli
from dr_runbooks.drills.backups import take_backups
from dr_runbooks.session import AwsSession
from ehr_dr_sandbox.api import Sandbox

from .conftest import scratch_left


@pytest.fixture(scope="module")
def backed_up_at_default_size(sandbox: Sandbox, aws: AwsSession) -> Sandbox:
    sandbox.seed()  # the defaults of `drctl sandbox seed`
    sandbox.action("replication-drain", timeout=120)
    take_backups(aws, sandbox.topology)
    return sandbox


def test_two_restore_drills_in_a_row_at_the_default_seed_size_pass_and_leave_no_scratch(
        backed_up_at_default_size: Sandbox, aws: AwsSession, sandbox_env: dict[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for attempt in ("first", "second"):
        result = CliRunner().invoke(cli, ["drill", "restore", "--output", "json"], catch_exceptions=False)
        record = json.loads(result.stdout)
        assert result.exit_code == 0, (attempt, record["errors"])
        torn = next(check for check in record["verifications"] if check["what"] == "scratch resources torn down")
        assert torn["result"] == "passed", (attempt, torn)
        assert scratch_left(backed_up_at_default_size, aws) == [], attempt
    assert len(list((tmp_path / ".ehr-dr" / "evidence").rglob("*.json"))) == 2
