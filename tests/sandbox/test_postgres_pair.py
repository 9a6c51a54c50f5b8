"""The PostgreSQL pair behind the two Aurora clusters: streaming, lag, failover, re-attach, switchover, bad input.

One pair for the module (a pair costs about 1.5 s); every test starts from the home layout (us-east-1 writing, us-west-1
streaming), restored by the `pair` fixture, so the tests do not depend on each other's order.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ehr_dr_sandbox import postgres_pair
from ehr_dr_sandbox.postgres_pair import PostgresError, PostgresPair, pair_state_dir, running_pair

PRIMARY, DR = "us-east-1", "us-west-1"


@pytest.fixture(scope="module")
def module_pair() -> Iterator[PostgresPair]:
    with pair_state_dir() as state_dir, running_pair(state_dir, PRIMARY, DR) as pair:
        yield pair


@pytest.fixture
def pair(module_pair: PostgresPair) -> PostgresPair:
    module_pair.restore_home_layout()
    with module_pair.writer().connect() as conn:
        conn.execute("DROP TABLE IF EXISTS rows; CREATE TABLE rows (id int PRIMARY KEY)")
    module_pair.wait_caught_up()
    return module_pair


def insert(pair: PostgresPair, ids: range) -> None:
    with pair.writer().connect() as conn:
        conn.execute("INSERT INTO rows SELECT generate_series(%s::int, %s::int)", (ids.start, ids.stop - 1))


def count(pair: PostgresPair, region: str) -> int:
    return int(pair.node(region).query_one("SELECT count(*) FROM rows"))


def test_new_pair_has_the_primary_writing_and_the_dr_node_standing_by(pair: PostgresPair) -> None:
    assert pair.status() == {PRIMARY: "writer", DR: "standby"}


def test_standby_streams_the_rows_written_on_the_writer(pair: PostgresPair) -> None:
    insert(pair, range(0, 50))
    pair.wait_caught_up()
    assert count(pair, DR) == 50


def test_lag_is_zero_when_the_standby_has_replayed_everything(pair: PostgresPair) -> None:
    sample = pair.lag()
    assert (sample.bytes, sample.seconds, sample.paused) == (0, 0.0, False)


def test_lag_grows_in_bytes_and_seconds_while_replication_is_paused(pair: PostgresPair) -> None:
    pair.pause_replication()
    insert(pair, range(0, 1000))
    time.sleep(0.3)
    sample = pair.lag()
    assert sample.paused
    assert sample.bytes is not None and sample.bytes > 1000
    assert sample.seconds is not None and sample.seconds >= 0.3


def test_resumed_replication_delivers_what_was_written_during_the_pause(pair: PostgresPair) -> None:
    pair.pause_replication()
    insert(pair, range(0, 10))
    pair.resume_replication()
    pair.wait_caught_up()
    assert count(pair, DR) == 10


def test_failover_while_paused_loses_exactly_the_rows_written_during_the_pause(pair: PostgresPair) -> None:
    insert(pair, range(0, 100))
    pair.wait_caught_up()
    pair.pause_replication()
    insert(pair, range(100, 137))
    pair.node(PRIMARY).kill()
    pair.promote(DR)
    assert pair.status() == {PRIMARY: "stopped", DR: "writer"}
    assert count(pair, DR) == 100


def test_reattach_after_failover_rewinds_the_old_writer_into_a_streaming_standby(pair: PostgresPair) -> None:
    pair.pause_replication()
    insert(pair, range(0, 5))  # the old writer diverges: these rows never reach the DR node
    pair.node(PRIMARY).kill()
    pair.promote(DR)
    insert(pair, range(1000, 1003))
    assert pair.reattach(PRIMARY) == "rewound"
    pair.wait_caught_up()
    assert pair.status() == {PRIMARY: "standby", DR: "writer"}
    assert count(pair, PRIMARY) == 3


def test_reattach_clones_afresh_when_the_old_writer_lost_its_data_dir(pair: PostgresPair) -> None:
    node = pair.node(PRIMARY)
    node.kill()
    pair.promote(DR)
    shutil.rmtree(node.data_dir)
    assert pair.reattach(PRIMARY) == "cloned"
    assert pair.status() == {PRIMARY: "standby", DR: "writer"}


def test_switchover_loses_no_row_and_swaps_the_roles(pair: PostgresPair) -> None:
    insert(pair, range(0, 500))
    pair.switchover(DR)
    assert pair.status() == {PRIMARY: "standby", DR: "writer"}
    assert count(pair, DR) == 500
    insert(pair, range(500, 510))
    pair.wait_caught_up()
    assert count(pair, PRIMARY) == 510


def test_switchover_is_abandoned_and_changes_nothing_when_the_standby_cannot_catch_up(pair: PostgresPair) -> None:
    pair.pause_replication()
    insert(pair, range(0, 5))
    with pytest.raises(PostgresError, match="did not catch up"):
        pair.switchover(DR, timeout=0.5)
    assert pair.status() == {PRIMARY: "writer", DR: "standby"}
    assert count(pair, PRIMARY) == 5


def test_promoting_a_writer_is_refused(pair: PostgresPair) -> None:
    with pytest.raises(PostgresError, match="not a running standby"):
        pair.promote(PRIMARY)
    assert pair.status() == {PRIMARY: "writer", DR: "standby"}


def test_an_unknown_region_is_a_clear_error(pair: PostgresPair) -> None:
    with pytest.raises(PostgresError, match="no PostgreSQL node for region 'eu-west-1'"):
        pair.promote("eu-west-1")


def test_a_stopped_pair_starts_again_with_its_roles_and_rows(pair: PostgresPair) -> None:
    insert(pair, range(0, 25))
    pair.stop()
    assert pair.status() == {PRIMARY: "stopped", DR: "stopped"}
    pair.start()
    assert pair.status() == {PRIMARY: "writer", DR: "standby"}
    assert count(pair, DR) == 25


def test_a_pair_reopened_from_its_state_dir_observes_the_same_roles(pair: PostgresPair) -> None:
    assert PostgresPair.open(pair.state_dir).status() == pair.status()


# --- refusals before anything is made ---------------------------------------------------------------------------


def test_a_non_empty_state_dir_is_refused_and_left_untouched(tmp_path: Path) -> None:
    (tmp_path / "leftover").write_text("x")
    with pytest.raises(PostgresError, match="is not empty"):
        PostgresPair.create(tmp_path, PRIMARY, DR)
    assert [path.name for path in tmp_path.iterdir()] == ["leftover"]


def test_a_port_in_use_is_refused_and_nothing_is_made(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        with pytest.raises(PostgresError, match=f"port {busy} on 127.0.0.1 is in use"):
            PostgresPair.create(tmp_path / "pair", PRIMARY, DR, ports=(busy, postgres_pair.free_port()))
    assert not (tmp_path / "pair").exists()


def test_missing_binaries_are_named_and_nothing_is_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    incomplete = tmp_path / "bin"
    incomplete.mkdir()
    monkeypatch.setattr(postgres_pair, "binaries_dir", lambda: incomplete)
    with pytest.raises(PostgresError, match=r"missing PostgreSQL binaries in .*: initdb, postgres, pg_ctl"):
        PostgresPair.create(tmp_path / "pair", PRIMARY, DR)
    assert not (tmp_path / "pair").exists()


def test_a_state_dir_without_a_pair_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(PostgresError, match="no PostgreSQL pair in"):
        PostgresPair.open(tmp_path)
