"""The records database emulation's own duties: what it leaves behind is removable, and seeding goes to the writer."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psutil

from ehr_dr_sandbox.api import Sandbox
from ehr_dr_sandbox.postgres_pair import PostgresPair
from ehr_dr_sandbox.records_db import PAIR_DIR, pair_dir, remove_leftovers

from .records_db_sandbox import pair_of, records_db_sandbox

__all__ = ["records_db_sandbox"]


def test_leftovers_of_a_killed_sandbox_are_stopped_and_removed(tmp_path: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="ehr-dr-pg-"))
    try:
        (tmp_path / PAIR_DIR).symlink_to(home, target_is_directory=True)
        pair = PostgresPair.create(pair_dir(tmp_path), "us-east-1", "us-west-1")
        pids = [node.pid for node in pair.nodes.values()]
        assert remove_leftovers(tmp_path) is True
        assert not any(pid is not None and psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
                       for pid in pids)
        assert not home.exists() and not os.path.lexists(tmp_path / PAIR_DIR)
        assert remove_leftovers(tmp_path) is False
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_the_records_seed_action_writes_to_the_writer_once(records_db_sandbox: Sandbox) -> None:
    patients = [{"patient_id": "pt-000001", "practice": "practice-01", "given_name": "Alex",
                 "family_name": "Synthetic", "birth_date": "1970-01-02", "last_visit": "2025-06-30",
                 "retained_until": "2032-06-30"}]
    scans = [{"scan_id": "scan-000001-00", "patient_id": "pt-000001",
              "object_key": "charts/practice-01/pt-000001/scan-000001-00.pdf", "sha256": "ab" * 32,
              "content_type": "application/pdf", "size_bytes": 10}]
    first = records_db_sandbox.action("records-seed", patients=patients, scans=scans)
    again = records_db_sandbox.action("records-seed", patients=patients, scans=scans)
    assert (first["scans"], again["scans"]) == (1, 0)
    writer = pair_of(records_db_sandbox).writer()
    assert writer.query_one("SELECT sha256 FROM scans", dbname=records_db_sandbox.topology.database_name) == "ab" * 32
