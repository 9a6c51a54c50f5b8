"""The journal of a run: one DynamoDB item per run and per step, written as the run goes, plus a local copy.

It lives in the runbook table of the region the run targets (static stability: a failover never needs the region it
leaves). Each step's item says when it started and ended, its outcome, its outputs and the AWS calls it made; `drctl
resume RUN_ID` reads it back and runs only the steps not yet succeeded. The local JSON under `.ehr-dr/runs/` is the
operator's copy for evidence, written after every change; the table stays the source of truth.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from dr_runbooks.engine.calls import CallRecord
from dr_runbooks.session import AwsSession

#: "waiting": the step handed control back before what it waits for held (`engine.waits.StepPending`); it is not done,
#: and its next invocation continues from its checkpoints (`StepRecord.progress`).
StepStatus = Literal["running", "waiting", "succeeded", "failed"]
RunStatus = Literal["running", "succeeded", "failed"]

#: `<utc-time>-<runbook>-<target-region>-<random>`: sortable, says what it was, and where its journal lives.
RUN_ID_PATTERN = re.compile(r"^\d{8}T\d{6}Z-[a-z]+-(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)-[0-9a-f]{6}$")

LOCAL_RUNS = Path(".ehr-dr") / "runs"


def new_run_id(runbook: str, target_region: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{runbook}-{target_region}-{secrets.token_hex(3)}"


def execution_run_id(runbook: str, target_region: str, execution_id: str, started_at: str) -> str:
    """The run id of a Step Functions execution: its start time and a digest of its id, so every attempt of its
    `start-run` task (Lambda errors are retried) names the same run, takes the same lock and journals the same
    record, instead of a second run colliding with the first attempt's lock."""
    stamp = datetime.fromisoformat(started_at.replace("Z", "+00:00")).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{runbook}-{target_region}-{hashlib.sha256(execution_id.encode()).hexdigest()[:6]}"


def region_of_run(run_id: str) -> str:
    """The region whose table holds the run's journal, read from the run id itself."""
    match = RUN_ID_PATTERN.match(run_id)
    if not match:
        raise ValueError(f"{run_id!r} is not a run id (expected e.g. 20261122T031500Z-failover-us-west-1-3fa2c1)")
    return match["region"]


class StepRecord(BaseModel):
    name: str
    status: StepStatus
    started_at: float
    ended_at: float | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    calls: list[CallRecord] = Field(default_factory=list)
    call_count: int = 0
    busy_seconds: float = 0.0
    #: What the step checkpointed (`RunContext.checkpoint`) to survive to its next invocation, e.g. a restore job id.
    progress: dict[str, Any] = Field(default_factory=dict)
    #: Set on a "waiting" record: invoke the step again after this many whole seconds.
    resume_after_seconds: int | None = None


class RunRecord(BaseModel):
    run_id: str
    runbook: str
    env_name: str
    target_region: str
    params: dict[str, Any]
    operator: str
    mfa: bool
    status: RunStatus = "running"
    started_at: float = Field(default_factory=time.time)
    ended_at: float | None = None
    error: str | None = None
    steps: dict[str, StepRecord] = Field(default_factory=dict)


class JournalNotFound(LookupError):
    pass


class Journal:
    """Reads and writes run and step items in `table` of `region`; keeps the local copy in `local_dir`."""

    def __init__(self, aws: AwsSession, region: str, table: str, local_dir: Path = LOCAL_RUNS) -> None:
        self.aws = aws
        self.region = region
        self.table = table
        self.local_dir = local_dir
        self._runs: dict[str, RunRecord] = {}
        #: Concurrent steps journal at the same time; the local copy must be written whole by one of them at a time.
        self._local_lock = threading.Lock()

    @property
    def _dynamodb(self) -> Any:
        return self.aws.client("dynamodb", self.region)

    def start(self, run: RunRecord) -> RunRecord:
        self._runs[run.run_id] = run
        self._put(run.run_id, "run", run.model_dump(exclude={"steps"}))
        self._save_local(run)
        return run

    def load(self, run_id: str) -> RunRecord:
        items: list[dict[str, Any]] = []
        paginator = self._dynamodb.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"run#{run_id}"}},
            ConsistentRead=True,
        ):
            items.extend(page["Items"])
        docs = {item["sk"]["S"]: json.loads(item["doc"]["S"]) for item in items}
        if "run" not in docs:
            raise JournalNotFound(f"no run {run_id} in table {self.table} of {self.region}")
        run = RunRecord.model_validate(docs.pop("run"))
        run.steps = {doc["name"]: StepRecord.model_validate(doc) for doc in docs.values()}
        self._runs[run_id] = run
        self._save_local(run)
        return run

    def record_step(self, run_id: str, record: StepRecord) -> None:
        run = self._runs[run_id]
        with self._local_lock:
            run.steps[record.name] = record
        self._put(run_id, f"step#{record.name}", record.model_dump())
        self._save_local(run)

    def step_record(self, run_id: str, step_name: str) -> StepRecord | None:
        return self._runs[run_id].steps.get(step_name)

    def checkpoint(self, run_id: str, step_name: str, values: dict[str, Any]) -> None:
        """Merge `values` into the step's progress and write the record at once (before the next call could die)."""
        json.dumps(values)  # a value the table cannot hold as JSON fails here, in the step, not silently stringified
        record = self._runs[run_id].steps[step_name]
        self.record_step(run_id, record.model_copy(update={"progress": {**record.progress, **values}}))

    def finish(self, run_id: str, status: RunStatus, error: str | None = None) -> RunRecord:
        run = self._runs[run_id]
        run.status, run.error, run.ended_at = status, error, time.time()
        self._put(run_id, "run", run.model_dump(exclude={"steps"}))
        self._save_local(run)
        return run

    def step_outputs(self, run_id: str, step_name: str) -> dict[str, Any]:
        record = self._runs[run_id].steps.get(step_name)
        if record is None or record.status != "succeeded":
            raise LookupError(f"step {step_name!r} of run {run_id} has no outputs (not succeeded)")
        return record.outputs

    def _put(self, run_id: str, sort_key: str, doc: dict[str, Any]) -> None:
        self._dynamodb.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": f"run#{run_id}"},
                "sk": {"S": sort_key},
                "status": {"S": str(doc.get("status", ""))},
                "doc": {"S": json.dumps(doc, default=str)},
            },
        )

    def _save_local(self, run: RunRecord) -> None:
        with self._local_lock:
            self.local_dir.mkdir(parents=True, exist_ok=True)
            path = self.local_dir / f"{run.run_id}.json"
            temporary = path.with_suffix(".tmp")
            temporary.write_text(run.model_dump_json(indent=2))
            temporary.replace(path)
