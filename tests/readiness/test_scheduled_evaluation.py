"""The hourly evaluation as AWS runs it (the runbook function's `evaluate` action): CloudWatch metrics, an evidence
record in its region, and `drctl status` showing the last verdict and its age."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from click.testing import Result

from dr_runbooks.evidence.record import EvidenceRecord
from dr_runbooks.evidence.store import S3EvidenceBucket
from dr_runbooks.orchestration.handler import handle
from dr_runbooks.readiness.scheduled import CHECK_METRIC
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import (
    READINESS_NAMESPACE,
    READY_METRIC,
    database_function_name,
    runbook_function_name,
)
from ehr_dr_sandbox.api import Sandbox


def _as_role(sandbox: Sandbox, role: str) -> AwsSession:
    """An AwsSession with the credentials Lambda gives a function of the stacks' role `role` (enforced by the
    sandbox's IAM against the policies the stacks deploy)."""
    return sandbox.role_session(role)


def evaluate_as_scheduled(sandbox: Sandbox, region: str, scratch: Any) -> dict[str, Any]:
    """The runbook function of `region` invoked as the schedule invokes it, under its own role; its calls to a
    database function are that function's handler under that function's role, run here (moto cannot invoke Lambda
    without Docker)."""
    env_name = sandbox.config.env_name

    def invoke_database(where: str, payload: dict[str, Any]) -> dict[str, Any]:
        database = _as_role(sandbox, f"{database_function_name(env_name)}-{where}")
        return handle(payload, database, env_name, where, scratch=scratch)

    return handle({"action": "evaluate"}, _as_role(sandbox, f"{runbook_function_name(env_name)}-{region}"), env_name,
                  region, scratch=scratch, invoke_database=invoke_database)


def _points(sandbox: Sandbox, region: str, metric: str, **dimensions: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return sandbox.client("cloudwatch", region).get_metric_statistics(
        Namespace=READINESS_NAMESPACE, MetricName=metric, StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=1), Period=60, Statistics=["Minimum"],
        Dimensions=[{"Name": name, "Value": value} for name, value in dimensions.items()])["Datapoints"]


def test_the_hourly_evaluation_publishes_its_verdict_and_a_metric_per_check(
    estate: Sandbox, sandbox_env: dict[str, str], tmp_path: Any
) -> None:
    region = estate.topology.dr_region
    answer = evaluate_as_scheduled(estate, region, tmp_path)
    [ready] = _points(estate, region, READY_METRIC, EvaluatedIn=region)
    assert ready["Minimum"] == float(answer["ready"])
    [lock] = _points(estate, region, CHECK_METRIC, EvaluatedIn=region, Check="lock", Region="both")
    assert lock["Minimum"] == 1.0


def test_the_hourly_evaluation_appends_a_readiness_record_to_its_regions_evidence(
    estate: Sandbox, sandbox_env: dict[str, str], tmp_path: Any
) -> None:
    region = estate.topology.primary_region
    answer = evaluate_as_scheduled(estate, region, tmp_path)
    bucket = S3EvidenceBucket(estate.client("s3", region), estate.topology.in_region(region).evidence_bucket)
    [name] = [name for name in bucket.names(estate.config.env_name) if answer["run_id"] in name]
    record = EvidenceRecord.model_validate_json(bucket.get(name))
    assert (record.kind, record.outcome) == ("readiness", "succeeded" if answer["ready"] else "failed")
    results = {verification.what: verification.result for verification in record.verifications}
    assert {"lock", f"keys ({region})"} <= set(results)
    assert results["aurora"] == "passed"  # the heartbeat row read through the target's database function


def test_the_runbook_functions_role_allows_every_read_of_the_evaluation(estate: Sandbox, tmp_path: Any) -> None:
    """Under the function's own role, as deployed: the estate evaluates ready, so no check was denied a read."""
    answer = evaluate_as_scheduled(estate, estate.topology.primary_region, tmp_path)
    assert answer["failed"] == []
    assert answer["ready"] is True


def test_status_shows_the_last_evaluation_and_its_age(
    drctl: Callable[..., Result], estate: Sandbox, sandbox_env: dict[str, str], tmp_path: Any
) -> None:
    region = estate.topology.dr_region
    answer = evaluate_as_scheduled(estate, region, tmp_path)
    result = drctl("status", "--output", "json")
    seen = json.loads(result.stdout)["regions"][region]["probes"]["last_evaluation"]["value"]
    assert seen["ready"] is answer["ready"]
    assert 0 <= seen["age_seconds"] < 120
    assert "last evaluation" in drctl("status").stdout
