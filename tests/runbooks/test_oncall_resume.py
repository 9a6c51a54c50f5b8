"""`drctl resume` of an on-call run is checked as a new run is, and one runbook runs at a time per environment.

Runs are killed in-process (a BaseException right after a step, which nothing in drctl handles); each test starts from
whichever region writes now, and no test leaves a lock behind.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from tenacity import retry, stop_after_delay, wait_fixed

from dr_runbooks.commands import render
from dr_runbooks.engine.journal import Journal
from dr_runbooks.engine.lock import RunLock
from dr_runbooks.observe import probes
from dr_runbooks.runbooks import steps
from dr_runbooks.session import AwsSession
from ehr_dr_sandbox.api import Sandbox
from ehr_dr_sandbox.faults import FaultsClient

from .conftest import MFA, estate_state, report_lag, wait_connected


class Crash(BaseException):
    """The process dying right after a step."""


def writer(sandbox: Sandbox, ask: str = "us-west-1") -> str:
    found = probes.global_cluster(sandbox.client("rds", ask), sandbox.topology.global_cluster_id).writer()
    assert found is not None
    return found.region


def lock(sandbox: Sandbox, required: str) -> RunLock:
    return RunLock.of_environment(AwsSession(endpoint_url=sandbox.endpoint_url), sandbox.topology, required)


@pytest.fixture
def target(sandbox: Sandbox) -> str:
    """The region that does not write now, at rest (no member rebuilding); both regions report a small lag."""
    wait_connected(sandbox)
    for region in sandbox.topology.regions:
        report_lag(sandbox, region, 1.0)
    return sandbox.topology.partner(writer(sandbox))


@pytest.fixture(autouse=True)
def no_lock_left(sandbox: Sandbox) -> Iterator[None]:
    """A test that leaves a killed run behind must not refuse the next test's runs."""
    yield
    key = {"pk": {"S": f"lock#{sandbox.topology.env_name}"}, "sk": {"S": "lock"}}
    for region, resources in sandbox.topology.regions.items():
        sandbox.client("dynamodb", region).delete_item(TableName=resources.runbook_table, Key=key)


def killed(drctl: Callable[..., Result], monkeypatch: pytest.MonkeyPatch, after: str, *args: str) -> str:
    """Run `drctl ARGS`, kill it right after step `after` ended, and return the run id."""
    real = render.Progress.step_ended

    def crash(self: render.Progress, step, record) -> None:  # type: ignore[no-untyped-def]
        real(self, step, record)
        if step.name == after:
            raise Crash(step.name)

    with monkeypatch.context() as patch:
        patch.setattr(render.Progress, "step_ended", crash)
        with pytest.raises(Crash):
            drctl(*args)
    return max(Path(".ehr-dr/runs").glob("*.json"), key=lambda path: path.stat().st_mtime).stem


def killed_failover(drctl: Callable[..., Result], monkeypatch: pytest.MonkeyPatch, target: str) -> str:
    """A failover killed after reading the target's canaries, before it promoted anything."""
    return killed(drctl, monkeypatch, "find-last-canaries",
                  "failover", "--to", target, "--yes", "--accept-data-loss", *MFA)


def journal_of(sandbox: Sandbox, run_id: str, target: str, tmp_path: Path) -> dict:
    journal = Journal(AwsSession(endpoint_url=sandbox.endpoint_url), target,
                      sandbox.topology.in_region(target).runbook_table, tmp_path / "peek")
    return journal.load(run_id).model_dump()


@pytest.mark.parametrize("flags", [(), ("--yes",), ("--accept-data-loss",)],
                         ids=["no-flags", "yes-only", "accept-data-loss-only"])
def test_resume_of_a_killed_failover_without_every_acknowledgment_is_refused_and_changes_nothing(
    drctl: Callable[..., Result], sandbox: Sandbox, target: str, monkeypatch: pytest.MonkeyPatch,
    flags: tuple[str, ...]
) -> None:
    run_id = killed_failover(drctl, monkeypatch, target)
    before = estate_state(sandbox)
    result = drctl("resume", run_id, *flags, *MFA)  # stdin is not a terminal: nobody can type a confirmation
    assert result.exit_code == 2, result.output
    assert "expected data loss" in result.output
    assert result.output.strip().splitlines()[-1].startswith("refused: ")
    assert estate_state(sandbox) == before
    assert writer(sandbox) == sandbox.topology.partner(target)


def test_resume_of_a_killed_failover_reruns_the_preflight_and_journals_what_it_showed(
    drctl: Callable[..., Result], sandbox: Sandbox, target: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run_id = killed_failover(drctl, monkeypatch, target)
    result = drctl("resume", run_id, "--yes", "--accept-data-loss", "--output", "json", *MFA)
    assert result.exit_code == 0, result.output
    assert "expected data loss" in result.output
    assert writer(sandbox, target) == target
    resumes = journal_of(sandbox, run_id, target, tmp_path)["params"]["resumes"]
    assert [(resume["preflight"], resume["seen"]["writer_region"], resume["seen"]["target_is_writer"])
            for resume in resumes] == [("passed", sandbox.topology.partner(target), False)]
    assert "expected_data_loss_seconds" in resumes[0]["seen"]


@retry(stop=stop_after_delay(60), wait=wait_fixed(0.5), reraise=True)
def wait_for_writer(sandbox: Sandbox, region: str) -> None:
    cluster = probes.global_cluster(sandbox.client("rds", region), sandbox.topology.global_cluster_id)
    assert cluster.status == "available" and cluster.writer() is not None and cluster.writer().region == region


def test_resume_after_the_writer_moved_under_the_run_is_refused_naming_the_change(
    drctl: Callable[..., Result], sandbox: Sandbox, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = sandbox.topology.partner(target)
    run_id = killed_failover(drctl, monkeypatch, target)
    cluster = probes.global_cluster(sandbox.client("rds", target), sandbox.topology.global_cluster_id)
    member = cluster.member_in(target)
    assert member is not None
    sandbox.client("rds", source).switchover_global_cluster(  # someone else moved the writer meanwhile
        GlobalClusterIdentifier=sandbox.topology.global_cluster_id, TargetDbClusterIdentifier=member.cluster_arn)
    wait_for_writer(sandbox, target)
    before = estate_state(sandbox)
    result = drctl("resume", run_id, "--yes", "--accept-data-loss", *MFA)
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        f"refused: the estate moved on since run {run_id} began: the writer is {target}, not {source} as the run "
        "saw at its start, and the run's own steps did not move it")
    assert estate_state(sandbox) == before


def test_resume_of_a_run_whose_holder_is_alive_is_refused(
    drctl: Callable[..., Result], sandbox: Sandbox, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = killed_failover(drctl, monkeypatch, target)
    lock(sandbox, target).acquire(run_id, "arn:aws:iam::123456789012:user/alice")  # the same run, running elsewhere
    before = estate_state(sandbox)
    result = drctl("resume", run_id, "--yes", "--accept-data-loss", *MFA)
    assert result.exit_code == 2, result.output
    assert re.fullmatch(rf"refused: run {run_id} by arn:aws:iam::123456789012:user/alice holds the runbook lock since "
                        r"\S+ \S+ and is alive \(lease renewed \d+ s ago\): wait for it to end", result.output.strip())
    assert estate_state(sandbox) == before


def test_a_run_refused_by_a_dead_holder_is_offered_resume_and_an_unlock_that_works_as_printed(
    drctl: Callable[..., Result], sandbox: Sandbox, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = killed(drctl, monkeypatch, "canary-row", "switchover", "--to", target, "--yes", *MFA)
    refused = drctl("switchover", "--to", sandbox.topology.partner(target), "--yes", *MFA)  # the other direction
    assert refused.exit_code == 2, refused.output
    assert "but is not running" in refused.output
    assert f"`drctl resume {run_id} --env demo --mfa-serial ARN --mfa-code CODE`" in refused.output
    printed = re.search(r"`drctl (unlock [^`]*)`", refused.output)
    assert printed is not None
    words = [{"ARN": MFA[1], "CODE": MFA[3]}.get(word, word) for word in shlex.split(printed[1])]
    unlocked = drctl(*words)
    assert unlocked.exit_code == 0, unlocked.output
    assert f"lock of {run_id} broken in us-east-1, us-west-1" in unlocked.output
    assert lock(sandbox, target).holders() == []


def test_the_lock_is_free_after_a_run_succeeds(drctl: Callable[..., Result], sandbox: Sandbox, target: str) -> None:
    result = drctl("switchover", "--to", target, "--yes", "--output", "json", *MFA)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "succeeded"
    assert lock(sandbox, target).holders() == []


def test_the_lock_is_free_after_a_run_fails(
    drctl: Callable[..., Result], sandbox: Sandbox, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: object) -> None:
        raise RuntimeError("the bucket said no")

    monkeypatch.setattr(steps, "write_source_canary_row", refuse)
    result = drctl("switchover", "--to", target, "--yes", *MFA)
    assert result.exit_code == 1, result.output
    assert lock(sandbox, target).holders() == []


def test_with_the_other_region_dark_a_holder_in_the_surviving_region_refuses_a_failover(
    drctl: Callable[..., Result], sandbox: Sandbox, target: str, sandbox_faults: FaultsClient
) -> None:
    sandbox_faults.region_down(sandbox.topology.partner(target))
    holder = lock(sandbox, target)
    holder.acquire("20261122T030000Z-failback-us-west-1-abcdef", "arn:aws:iam::123456789012:user/alice")
    assert holder.dark == [sandbox.topology.partner(target)]
    result = drctl("failover", "--to", target, "--yes", "--accept-data-loss", *MFA)
    assert result.exit_code == 2, result.output
    assert "run 20261122T030000Z-failback-us-west-1-abcdef by arn:aws:iam::123456789012:user/alice" in result.output
    assert "and is alive" in result.output


def test_with_the_other_region_dark_the_surviving_regions_lock_suffices(
    drctl: Callable[..., Result], sandbox: Sandbox, target: str, sandbox_faults: FaultsClient
) -> None:
    sandbox_faults.region_down(sandbox.topology.partner(target))
    result = drctl("failover", "--to", target, "--yes", "--accept-data-loss", "--output", "json", *MFA)
    assert result.exit_code == 0, result.output
    assert writer(sandbox, target) == target
    assert lock(sandbox, target).holders() == []
