"""A seeded sandbox, drctl in-process, an injected clock, and views of a patient's charts and rows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from click.testing import CliRunner, Result

from dr_runbooks.cli import cli
from dr_runbooks.lifecycle import commands
from dr_runbooks.lifecycle.policy import RetentionPolicy
from dr_runbooks.runbooks.canary import Database, connect, db_endpoint
from ehr_dr_sandbox.api import Sandbox
from ehr_dr_sandbox.seed import SyntheticPatient, synthesize

#: Every changing command runs as the on-call engineer does: the dr-operator role, assumed with MFA.
MFA = ["--mfa-serial", "arn:aws:iam::123456789012:mfa/records", "--mfa-code", "123456", "--assume-operator"]
PATIENTS, FILES = 60, 2
TODAY = date(2026, 11, 29)
LOCK_FIELDS = ("ObjectLockMode", "ObjectLockRetainUntilDate", "ObjectLockLegalHoldStatus")


@pytest.fixture(scope="module")
def seeded(sandbox: Sandbox) -> list[SyntheticPatient]:
    """The seeded patients (each with `retained_until`, as the seed locked their charts)."""
    sandbox.seed(patients=PATIENTS, files_per_patient=FILES)
    sandbox.action("replication-drain", timeout=30)
    people, _ = synthesize(PATIENTS, FILES, policy=RetentionPolicy.of(sandbox.config))
    return people


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[date], None]:
    """Set the lifecycle commands' clock to midnight UTC of a day (the default: the real time)."""
    return lambda day: monkeypatch.setattr(commands, "clock", lambda: datetime(day.year, day.month, day.day,
                                                                                tzinfo=UTC))


@pytest.fixture
def drctl(sandbox_env: dict[str, str], tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """`drctl ARGS` in-process against the sandbox, in a fresh working dir (journals and evidence land there)."""
    monkeypatch.chdir(tmp_path)
    return lambda *args: CliRunner().invoke(cli, list(args), env=sandbox_env, catch_exceptions=False)


@pytest.fixture
def records_db(sandbox: Sandbox) -> Iterator[Database]:
    """The writer's records database (the primary region's: nothing in these modules moves the writer)."""
    region = sandbox.topology.primary_region
    topology = sandbox.topology
    endpoint = db_endpoint(sandbox.client("rds", region), sandbox.client("secretsmanager", region),
                           topology.in_region(region).db_cluster_id, topology.db_secret_name, topology.database_name)
    with connect(endpoint) as db:
        yield db


def versions(sandbox: Sandbox, patient: SyntheticPatient) -> dict[str, list[dict[str, Any]]]:
    """Every version of the patient's charts in each region, with its lock (HeadObject)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for region, resources in sandbox.topology.regions.items():
        s3 = sandbox.client("s3", region)
        listed = s3.list_object_versions(Bucket=resources.chart_bucket,
                                         Prefix=f"charts/{patient.practice}/{patient.patient_id}/")
        heads = [s3.head_object(Bucket=resources.chart_bucket, Key=item["Key"], VersionId=item["VersionId"])
                 for item in listed.get("Versions", [])]
        found[region] = [{"Key": item["Key"], "VersionId": item["VersionId"],
                          **{name: head.get(name) for name in LOCK_FIELDS}}
                         for item, head in zip(listed.get("Versions", []), heads, strict=True)]
    return found


def pick(seeded: list[SyntheticPatient], used: set[str], *, past: bool | None = None, minor: bool = False,
         ) -> SyntheticPatient:
    """A patient no other test of the module took: retention passed (`past`) or not, a minor at the last visit."""
    for patient in seeded:
        if patient.patient_id in used or patient.retained_until is None:
            continue
        if past is not None and (date.fromisoformat(patient.retained_until) < TODAY) != past:
            continue
        birth, visit = date.fromisoformat(patient.birth_date), date.fromisoformat(patient.last_visit)
        if minor != (visit < birth.replace(year=birth.year + 18)):
            continue
        used.add(patient.patient_id)
        return patient
    raise AssertionError("the seed has no such patient left: seed more")
