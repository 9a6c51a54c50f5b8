"""A sandbox with the records database emulation installed, one per test module, for the database emulations' tests.

Imported by test modules (pytest collects a fixture a module imports). It adds `records_db` to the server's
emulations only if sandbox-core's list does not name it yet, so it keeps working once it does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ehr_dr_sandbox import server
from ehr_dr_sandbox.api import Sandbox
from ehr_dr_sandbox.postgres_pair import PostgresPair
from ehr_dr_sandbox.records_db import pair_dir

RECORDS_DB = "ehr_dr_sandbox.records_db"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def records_db_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with pytest.MonkeyPatch.context() as patch:
        if RECORDS_DB not in server.EMULATIONS:
            patch.setattr(server, "EMULATIONS", (*server.EMULATIONS, RECORDS_DB))
        with Sandbox.start(tmp_path_factory.mktemp("sandbox"), cdk_json=REPO / "cdk.json") as sandbox:
            yield sandbox


def pair_of(sandbox: Sandbox) -> PostgresPair:
    """The PostgreSQL pair behind the sandbox's clusters, found by its state file."""
    return PostgresPair.open(pair_dir(sandbox.state_dir))
