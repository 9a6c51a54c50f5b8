"""The hourly evaluation on AWS: EventBridge Scheduler invokes the runbook function of each region with
`{"action": "evaluate"}`; it evaluates, puts the verdict into CloudWatch in its own region and appends an evidence
record to its own region's evidence bucket.

Metrics (namespace `READINESS_NAMESPACE`, dimension `EvaluatedIn` = the function's region): `Ready` 1/0, and
`CheckPassed` 1/0 per check (`Check`, `Region`: the check's region or `both`). The stacks' not-ready alarm in each
region watches `Ready` and treats missing data as breaching: an evaluation that stopped running is not a ready estate.
`drctl status` reads the newest `Ready` point (`last_evaluation`), and `drctl report` counts the readiness records
(one an hour) to say how many hours of a period the estate was ready.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from dr_runbooks.engine.journal import new_run_id
from dr_runbooks.evidence.record import EvidenceRecord, Identity, Verification
from dr_runbooks.evidence.store import EvidenceLog, S3EvidenceBucket
from dr_runbooks.readiness.evaluate import Evaluation, evaluate
from dr_runbooks.runbooks import canary, steps
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import READINESS_NAMESPACE, READY_METRIC, Topology

CHECK_METRIC = "CheckPassed"
#: The run id label of a readiness record (lowercase letters: `engine.journal.RUN_ID_PATTERN`).
READINESS_LABEL = "readiness"
#: How far back `drctl status` looks for the last evaluation: two schedules, so one missed is still shown (as old).
LAST_EVALUATION_WINDOW = timedelta(hours=3)


def metric_data(evaluation: Evaluation, region: str) -> list[dict[str, Any]]:
    here = [{"Name": "EvaluatedIn", "Value": region}]
    stamp = evaluation.evaluated_at
    return [
        {"MetricName": READY_METRIC, "Dimensions": here, "Value": float(evaluation.ready), "Timestamp": stamp,
         "Unit": "Count"},
        *({"MetricName": CHECK_METRIC, "Timestamp": stamp, "Unit": "Count",
           "Value": float(check.verdict == "pass"), "Dimensions": [
               *here, {"Name": "Check", "Value": check.check}, {"Name": "Region", "Value": check.region or "both"}]}
          for check in evaluation.checks),
    ]


def evidence_record(evaluation: Evaluation, region: str, caller_arn: str, sandbox: bool) -> EvidenceRecord:
    """A readiness record: a verification per check (passed, failed, or skipped when it could not tell)."""
    results = {"pass": "passed", "fail": "failed", "unknown": "skipped"}
    ended = evaluation.evaluated_at + timedelta(seconds=evaluation.seconds)
    return EvidenceRecord(
        run_id=new_run_id(READINESS_LABEL, region), kind="readiness", environment=evaluation.env_name,
        from_region=evaluation.writer_region, to_region=evaluation.target_region,
        identity=Identity(caller_arn=caller_arn, mfa_used=False), started_at=evaluation.evaluated_at, ended_at=ended,
        outcome="succeeded" if evaluation.ready else "failed", sandbox=sandbox,
        verifications=tuple(Verification(what=check.name, how=check.reason, result=results[check.verdict])
                            for check in evaluation.checks))


def run(aws: AwsSession, topology: Topology, region: str,
        newest_row: Callable[[str], datetime | None] | None = None, sandbox: bool = False) -> dict[str, Any]:
    """Evaluate, publish the metrics in `region`, append the evidence record to `region`'s evidence bucket.
    `newest_row`: how the heartbeat row of a region is read (on AWS: its database function, `newest_row_of`)."""
    evaluation = evaluate(aws, topology, newest_row=newest_row)
    aws.client("cloudwatch", region).put_metric_data(Namespace=READINESS_NAMESPACE,
                                                     MetricData=metric_data(evaluation, region))
    record = evidence_record(evaluation, region, aws.identity(region).arn, sandbox)
    bucket = S3EvidenceBucket(aws.client("s3", region), topology.in_region(region).evidence_bucket)
    sealed = EvidenceLog(topology.env_name, [bucket]).append(record)
    return {"ready": evaluation.ready, "verdict": evaluation.verdict, "run_id": sealed.run_id,
            "failed": [check.name for check in evaluation.checks if check.verdict != "pass"]}


def newest_row_of(aws: AwsSession, topology: Topology, region: str) -> dict[str, Any]:
    """What the database function of `region` answers to `{"action": "newest-row"}`: the newest heartbeat or canary
    row its cluster's reader holds (it alone reaches the database, in the records VPC)."""
    here = topology.in_region(region)
    reader = canary.db_endpoint(aws.client("rds", region), aws.client("secretsmanager", region), here.db_cluster_id,
                                topology.db_secret_name, topology.database_name, reader=True)
    found = steps.DB_CANARY.newest(reader)
    return {"newest_row_at": found.isoformat() if found else None}


def last_evaluation(cloudwatch: Any, region: str, now: datetime | None = None) -> dict[str, Any] | None:
    """The newest `Ready` point `region` published: its verdict and when; None if none within the window."""
    now = now or datetime.now(UTC)
    points = cloudwatch.get_metric_statistics(
        Namespace=READINESS_NAMESPACE, MetricName=READY_METRIC, Dimensions=[{"Name": "EvaluatedIn", "Value": region}],
        StartTime=now - LAST_EVALUATION_WINDOW, EndTime=now + timedelta(minutes=1), Period=60,
        Statistics=["Minimum"])["Datapoints"]
    if not points:
        return None
    newest = max(points, key=lambda point: point["Timestamp"])
    at = newest["Timestamp"] if newest["Timestamp"].tzinfo else newest["Timestamp"].replace(tzinfo=UTC)
    return {"ready": newest["Minimum"] >= 1, "at": at.isoformat(), "age_seconds": round((now - at).total_seconds())}
