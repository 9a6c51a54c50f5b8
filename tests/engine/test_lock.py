"""The environment's lock: one lease over the runbook tables of both regions, renewed while its run runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import boto3
import pytest

from dr_runbooks.engine.context import RunContext
from dr_runbooks.engine.lock import LockHeld, RunLock
from dr_runbooks.engine.plan import Plan, Step
from dr_runbooks.engine.runner import execute
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology

from .conftest import TARGET

HERE = __name__
OTHER = "us-east-1"
#: Nothing listens there: a region whose endpoint does not answer.
DARK = "http://127.0.0.1:9"
LEASE = 0.6


def nap(ctx: RunContext) -> None:
    time.sleep(float(ctx.params.get("sleep", 0)))


def explode(ctx: RunContext) -> None:
    raise RuntimeError("the target cluster is not available")


def one_step() -> Plan:
    return Plan(runbook="test", description="one step",
                steps=(Step(name="nap", action=f"{HERE}:nap", description="sleeps as asked"),))


@pytest.fixture
def tables(aws: AwsSession, topology: Topology, table: str) -> dict[str, str]:
    """The runbook table of both regions (the target's comes from the engine fixtures)."""
    other = topology.in_region(OTHER).runbook_table
    aws.client("dynamodb", OTHER).create_table(
        TableName=other,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return {TARGET: table, OTHER: other}


@pytest.fixture
def env_lock(aws: AwsSession, topology: Topology, tables: dict[str, str]) -> Callable[..., RunLock]:
    """The environment's lock as a run to `required` takes it, optionally seeing `dark` regions that do not answer;
    a minute's lease unless a test watches one expire or renew (`LEASE`)."""

    def make(required: str = TARGET, dark: tuple[str, ...] = (), lease: float = 60) -> RunLock:
        session = AwsSession(boto3.session.Session(), endpoint_urls={region: DARK for region in dark})
        return RunLock(session, tables, topology.env_name, required, lease_seconds=lease)

    return make


def held_in(aws: AwsSession, tables: dict[str, str], topology: Topology) -> dict[str, str]:
    """Which run holds the lock item of each region's table."""
    key = {"pk": {"S": f"lock#{topology.env_name}"}, "sk": {"S": "lock"}}
    found = {}
    for region, table in tables.items():
        item = aws.client("dynamodb", region).get_item(TableName=table, Key=key).get("Item")
        if item:
            found[region] = item["run_id"]["S"]
    return found


def test_runs_in_opposite_directions_share_one_lock(env_lock: Callable[..., RunLock]) -> None:
    env_lock(required=TARGET).acquire("run-to-west", "alice")
    with pytest.raises(LockHeld, match=r"run run-to-west by alice holds the runbook lock .* and is alive"):
        env_lock(required=OTHER).acquire("run-to-east", "bob")


def test_the_lock_is_taken_in_every_region(
    env_lock: Callable[..., RunLock], aws: AwsSession, tables: dict[str, str], topology: Topology
) -> None:
    env_lock().acquire("run-a", "alice")
    assert held_in(aws, tables, topology) == {OTHER: "run-a", TARGET: "run-a"}


def test_a_refusal_in_one_region_releases_what_was_taken_in_the_others(
    env_lock: Callable[..., RunLock], aws: AwsSession, tables: dict[str, str], topology: Topology
) -> None:
    env_lock(dark=(OTHER,)).acquire("run-a", "alice")  # holds only the target's item
    with pytest.raises(LockHeld, match="run run-a by alice"):
        env_lock(required=OTHER).acquire("run-b", "bob")  # takes us-east-1 first (sorted), refused in us-west-1
    assert held_in(aws, tables, topology) == {TARGET: "run-a"}


def test_with_one_region_dark_the_surviving_regions_lock_suffices(
    env_lock: Callable[..., RunLock], aws: AwsSession, tables: dict[str, str], topology: Topology
) -> None:
    lock = env_lock(dark=(OTHER,))
    lock.acquire("run-a", "alice")
    assert (lock.taken, lock.dark) == ([TARGET], [OTHER])
    assert held_in(aws, tables, topology) == {TARGET: "run-a"}


def test_a_dark_target_region_refuses_the_lock(
    env_lock: Callable[..., RunLock], aws: AwsSession, tables: dict[str, str], topology: Topology
) -> None:
    with pytest.raises(LockHeld, match=f"cannot take the runbook lock in {TARGET}, the run's target"):
        env_lock(dark=(TARGET,)).acquire("run-a", "alice")
    assert held_in(aws, tables, topology) == {}


def test_a_live_run_is_not_taken_twice(env_lock: Callable[..., RunLock]) -> None:
    env_lock().acquire("run-a", "alice")
    with pytest.raises(LockHeld, match=r"run run-a by alice .* is alive .*: wait for it to end"):
        env_lock().acquire("run-a", "alice")


def test_a_dead_run_is_taken_again_only_by_itself(env_lock: Callable[..., RunLock]) -> None:
    env_lock(lease=LEASE).acquire("run-a", "alice")
    time.sleep(LEASE + 0.1)
    with pytest.raises(LockHeld, match=r"run run-a by alice .* is not running .*`drctl resume run-a --env enginetest "
                                       r"--mfa-serial ARN --mfa-code CODE`.*`drctl unlock --run-id run-a --env "
                                       r"enginetest --mfa-serial ARN --mfa-code CODE`"):
        env_lock().acquire("run-b", "bob")
    env_lock().acquire("run-a", "alice")


def test_the_lease_is_renewed_while_the_run_runs(
    env_lock: Callable[..., RunLock], make_context: Callable[..., RunContext]
) -> None:
    ctx = make_context(sleep=LEASE * 3)
    running = threading.Thread(target=execute, args=(one_step(), ctx, env_lock(lease=LEASE)))
    running.start()
    deadline, holder = time.monotonic() + LEASE * 3, None
    alive = False
    while time.monotonic() < deadline:  # until the lease outlived its first term, while the step still runs
        found = env_lock().holder()
        holder = found or holder  # a read after the run ended finds it released: keep the last one seen
        alive = found is not None and found.alive
        if found is not None and found.renewed_at > found.acquired_at + LEASE:
            break
        time.sleep(LEASE / 6)
    running.join()
    assert holder is not None and holder.run_id == ctx.run.run_id
    assert holder.renewed_at > holder.acquired_at + LEASE and alive
    assert env_lock().holder() is None, "released when the run ended"


def test_a_failed_run_releases_the_lock(env_lock: Callable[..., RunLock], make_context: Callable[..., RunContext]
                                        ) -> None:
    plan = Plan(runbook="test", description="fails",
                steps=(Step(name="fails", action=f"{HERE}:explode", description="fails"),))
    assert execute(plan, make_context(), env_lock()).status == "failed"
    assert env_lock().holder() is None


def test_a_renewal_in_a_dark_region_does_not_stop_the_run(
    env_lock: Callable[..., RunLock], aws: AwsSession, tables: dict[str, str], topology: Topology
) -> None:
    env_lock().acquire("run-a", "alice")
    half_dark = env_lock(dark=(OTHER,))
    half_dark.taken = [OTHER, TARGET]  # it took both, then us-east-1 went dark
    before = env_lock().holders()
    half_dark.renew("run-a")
    renewed = {holder.region: holder.renewed_at for holder in env_lock().holders()}
    assert renewed[TARGET] > next(holder.renewed_at for holder in before if holder.region == TARGET)


def steal_the_lease(ctx: RunContext) -> None:
    """The lock item disappears under the running run (as if broken), then the step takes a few renewals' time."""
    key = {"pk": {"S": f"lock#{ctx.topology.env_name}"}, "sk": {"S": "lock"}}
    ctx.client("dynamodb").delete_item(TableName=ctx.target.runbook_table, Key=key)
    time.sleep(LEASE / 2)


def test_a_run_that_lost_its_lease_starts_nothing_more_and_says_why(
    env_lock: Callable[..., RunLock], make_context: Callable[..., RunContext]
) -> None:
    plan = Plan(runbook="test", description="two", steps=(
        Step(name="first", action=f"{HERE}:steal_the_lease", description="loses the lease"),
        Step(name="second", action=f"{HERE}:nap", description="sleeps", depends_on=("first",)),
    ))
    ctx = make_context()
    run = execute(plan, ctx, env_lock(lease=LEASE))
    assert run.status == "failed"
    assert run.error is not None and f"run {ctx.run.run_id} lost the runbook lock in {TARGET}" in run.error
    assert "second" not in run.steps


def test_unlock_refuses_a_live_run(env_lock: Callable[..., RunLock]) -> None:
    env_lock().acquire("run-a", "alice")
    with pytest.raises(LockHeld, match="is alive"):
        env_lock().break_lock("run-a")


def test_unlock_breaks_a_dead_run_in_every_region_that_answers(
    env_lock: Callable[..., RunLock], aws: AwsSession, tables: dict[str, str], topology: Topology
) -> None:
    lock = env_lock()
    lock.acquire("run-a", "alice")
    lock.expire("run-a")
    assert env_lock().break_lock("run-a") == [OTHER, TARGET]
    assert held_in(aws, tables, topology) == {}
