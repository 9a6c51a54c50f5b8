"""The sandbox writes the heartbeat itself, as the stacks' schedule does in AWS: a row and an object in the region
that writes, on its interval (shortened here), and none while the writer's region is dark or the writer is down."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from dr_runbooks.runbooks import canary
from ehr_dr_sandbox.api import Sandbox

REPO = Path(__file__).resolve().parents[2]
INTERVAL = 0.3
EAST, WEST = "us-east-1", "us-west-1"


@pytest.fixture(scope="module")
def beating(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox.start(tmp_path_factory.mktemp("sandbox"), cdk_json=REPO / "cdk.json",
                       heartbeat_seconds=INTERVAL) as started:
        yield started


def after_beats(sandbox: Sandbox, count: int) -> dict:
    """The heartbeat report once `count` more beats have ended (so at least one started after what came before)."""
    start = sandbox.status()["heartbeat"]["beats"]
    deadline = time.monotonic() + 60
    while (report := sandbox.status()["heartbeat"])["beats"] < start + count:
        assert time.monotonic() < deadline, "the sandbox stopped beating"
        time.sleep(INTERVAL / 3)
    return report


def newest_object(sandbox: Sandbox, region: str) -> datetime | None:
    return canary.newest_heartbeat_object(sandbox.client("s3", region), sandbox.topology.in_region(region).chart_bucket)


def newest_row(sandbox: Sandbox, region: str) -> datetime | None:
    node_port = sandbox.status()["database"]["ports"][region]
    endpoint = canary.DbEndpoint(host="127.0.0.1", port=node_port, database=sandbox.topology.database_name,
                                 username="postgres", password="")
    with canary.connect(endpoint) as connection:
        return connection.execute("SELECT max(written_at) FROM dr_heartbeat").fetchone()[0]


def test_the_sandbox_writes_a_heartbeat_row_and_object_in_the_writers_region_on_its_interval(
        beating: Sandbox) -> None:
    report = after_beats(beating, 3)
    assert report["last"][EAST]["written"] is True and report["last"][WEST]["written"] is False
    assert newest_object(beating, EAST) >= datetime.fromisoformat(report["last"][EAST]["at"])
    beating.action("replication-drain", timeout=10)
    assert newest_object(beating, WEST) is not None  # replicated like every chart
    assert newest_row(beating, WEST) is not None  # streamed to the DR node like every row


def test_the_sandbox_heartbeat_stops_while_the_writers_region_is_dark(beating: Sandbox) -> None:
    beating.faults.region_down(EAST)
    try:
        after_beats(beating, 2)  # a beat in flight when the region went dark has ended
        beating.action("replication-drain", timeout=10)
        row, obj = newest_row(beating, WEST), newest_object(beating, WEST)
        report = after_beats(beating, 3)
        assert report["last"][EAST]["skipped"] == "region is dark"
        assert (newest_row(beating, WEST), newest_object(beating, WEST)) == (row, obj)
    finally:
        beating.faults.region_up(EAST)
    after_beats(beating, 2)
    assert newest_object(beating, EAST) > obj


def test_the_sandbox_heartbeat_stops_while_the_writer_is_down(beating: Sandbox) -> None:
    beating.action("kill-primary-db")
    after_beats(beating, 2)
    obj = newest_object(beating, EAST)
    last = after_beats(beating, 3)["last"]
    assert not last[EAST]["written"] and not last[WEST]["written"]
    assert newest_object(beating, EAST) == obj
