"""A restore drill validates the records it restores the way a real account allows: against the live DR database as
of the restore's own moment, with writes going on all the while, and with nothing recorded at backup time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dr_runbooks.drills.backups import take_backups
from dr_runbooks.runbooks.canary import DbEndpoint, connect, db_endpoint
from dr_runbooks.session import AwsSession
from ehr_dr_sandbox.api import Sandbox

from .conftest import restore_drill


def writer_endpoint(sandbox: Sandbox, aws: AwsSession) -> DbEndpoint:
    region = sandbox.topology.primary_region
    return db_endpoint(aws.client("rds", region), aws.client("secretsmanager", region),
                       sandbox.topology.in_region(region).db_cluster_id, sandbox.topology.db_secret_name,
                       sandbox.topology.database_name)


@pytest.fixture
def live_writes(seeded: Sandbox, aws: AwsSession) -> Iterator[list[int]]:
    """A writer recording chart views on the live database every few milliseconds for the whole test."""
    stop, written = threading.Event(), [0]
    endpoint = writer_endpoint(seeded, aws)

    def write() -> None:
        with connect(endpoint) as connection:
            user, scan = connection.execute("SELECT user_id, scan_id FROM view_history LIMIT 1").fetchone()
            while not stop.is_set():
                connection.execute("INSERT INTO view_history (user_id, scan_id, viewed_at) VALUES (%s, %s, %s)",
                                   (user, scan, datetime.now(UTC)))
                written[0] += 1
                stop.wait(0.005)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    yield written
    stop.set()
    thread.join(10)


def test_a_good_backup_taken_and_restored_under_live_writes_passes(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path, live_writes: list[int]) -> None:
    seeded.action("heartbeat-now")
    take_backups(aws, seeded.topology)
    seeded.action("heartbeat-now")

    run, _ = restore_drill(seeded, aws, tmp_path)

    assert live_writes[0] > 50, "the writer wrote throughout"
    assert run.status == "succeeded", run.error
    records = run.steps["validate-records"].outputs
    assert records["result"] == "passed" and records["as_of_from"] == "the restored database's newest heartbeat"
    assert records["tables"]["view_history"]["rows"] > 0


def test_a_backup_that_lost_a_tables_rows_fails_the_drill_naming_the_table(
        seeded: Sandbox, aws: AwsSession, tmp_path: Path) -> None:
    with connect(writer_endpoint(seeded, aws)) as connection:
        lost = connection.execute("DELETE FROM view_history WHERE id IN (SELECT id FROM view_history ORDER BY id "
                                  "LIMIT 5) RETURNING id, user_id, scan_id, viewed_at").fetchall()
    seeded.action("heartbeat-now")
    take_backups(aws, seeded.topology)  # this backup lacks the five views
    with connect(writer_endpoint(seeded, aws)) as connection:  # which the live database has again
        for row in lost:
            connection.execute("INSERT INTO view_history (id, user_id, scan_id, viewed_at) OVERRIDING SYSTEM VALUE "
                               "VALUES (%s, %s, %s, %s)", tuple(row))
    seeded.action("heartbeat-now")

    run, record = restore_drill(seeded, aws, tmp_path)

    assert run.status == "failed"
    problems = run.steps["validate-records"].outputs["problems"]
    assert len(problems) == 1 and problems[0].startswith("view_history: ") and "the live database has" in problems[0]
    assert not record.passed
