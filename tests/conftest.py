"""Shared fixtures. `sandbox`: a fresh, provisioned two-region sandbox per test module (free port, own state dir).

Module scope because provisioning takes seconds and moto's state is per process (one sandbox at a time: xdist runs
modules in separate worker processes, each with its own). A test that changes faults must clear them (or use
`sandbox_faults`, which does).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dr_runbooks.sandbox.api import Sandbox
from dr_runbooks.sandbox.faults import FaultsClient

REPO = Path(__file__).resolve().parent.parent


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
