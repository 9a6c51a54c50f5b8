"""Shared fixtures. `sandbox`: a fresh, provisioned two-region sandbox per test module (free port, own state dir).

Module scope because starting one takes seconds (moto's first calls, the PostgreSQL pair) and moto's state is per
process (one sandbox at a time per xdist worker). A test that changes faults must clear them (or use
`sandbox_faults`, which does).

Under `pytest -n N`, the tests of one module go to one worker (xdist's load-scope scheduling, chosen here): spread
over two workers, a module would start its module-scoped sandbox (or synth) twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ehr_dr_sandbox.api import Sandbox
from ehr_dr_sandbox.faults import FaultsClient

REPO = Path(__file__).resolve().parent.parent


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    from xdist.scheduler import LoadScopeScheduling

    return LoadScopeScheduling(config, log)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox.start(tmp_path_factory.mktemp("sandbox"), cdk_json=REPO / "cdk.json") as started:
        yield started


@pytest.fixture
def sandbox_faults(sandbox: Sandbox) -> Iterator[FaultsClient]:
    """The sandbox's `FaultsClient`; every fault (and a replication pause) is lifted after the test."""
    yield sandbox.faults
    sandbox.faults.clear()
    sandbox.faults.resume_replication()


@pytest.fixture
def sandbox_env(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This test's process environment points the AWS SDKs (and drctl run in-process) at the sandbox."""
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return sandbox.env
