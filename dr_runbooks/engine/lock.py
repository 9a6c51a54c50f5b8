"""One runbook at a time per environment: a lock item in the runbook table of the region the run targets.

Taken with a conditional put (free, or already ours: a resumed run re-takes its own lock), refreshed as steps end,
released when the run ends. A crashed run leaves its lock behind on purpose: the next operator sees who held it and
either resumes that run or breaks the lock explicitly with `drctl unlock` (MFA), never silently on expiry.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from dr_runbooks.session import AwsSession


class LockHeld(Exception):
    """Another run holds the lock; `str()` says who, since when, and how to proceed."""


class RunLock:
    def __init__(self, aws: AwsSession, region: str, table: str, env_name: str, ttl_seconds: float = 3600) -> None:
        self.aws = aws
        self.region = region
        self.table = table
        self.key = {"pk": {"S": f"lock#{env_name}"}, "sk": {"S": "lock"}}
        self.ttl_seconds = ttl_seconds

    @property
    def _dynamodb(self) -> Any:
        return self.aws.client("dynamodb", self.region)

    def acquire(self, run_id: str, owner: str) -> None:
        now = time.time()
        try:
            self._dynamodb.put_item(
                TableName=self.table,
                Item={
                    **self.key,
                    "run_id": {"S": run_id},
                    "owner": {"S": owner},
                    "acquired_at": {"N": f"{now:.3f}"},
                    "expires_at": {"N": f"{now + self.ttl_seconds:.3f}"},
                },
                ConditionExpression="attribute_not_exists(pk) OR run_id = :run",
                ExpressionAttributeValues={":run": {"S": run_id}},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            raise LockHeld(self.describe_holder()) from None

    def check_free(self) -> None:
        """Refuse early (before any preflight) when a run holds the lock: resuming it is the operator's next move."""
        if self.holder() is not None:
            raise LockHeld(self.describe_holder())

    def refresh(self, run_id: str) -> None:
        self._dynamodb.update_item(
            TableName=self.table,
            Key=self.key,
            UpdateExpression="SET expires_at = :expires",
            ConditionExpression="run_id = :run",
            ExpressionAttributeValues={
                ":run": {"S": run_id},
                ":expires": {"N": f"{time.time() + self.ttl_seconds:.3f}"},
            },
        )

    def release(self, run_id: str) -> None:
        """Release our own lock; a lock already broken or taken by someone else is left alone."""
        with contextlib.suppress(LookupError):
            self.break_lock(run_id)

    def holder(self) -> dict[str, Any] | None:
        item = self._dynamodb.get_item(TableName=self.table, Key=self.key, ConsistentRead=True).get("Item")
        if not item:
            return None
        return {
            "run_id": item["run_id"]["S"],
            "owner": item["owner"]["S"],
            "acquired_at": float(item["acquired_at"]["N"]),
            "expires_at": float(item["expires_at"]["N"]),
        }

    def describe_holder(self) -> str:
        holder = self.holder()
        if holder is None:
            return "the lock changed hands while we looked; retry"
        since = datetime.fromtimestamp(holder["acquired_at"], UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        stale = " (stale: expired)" if holder["expires_at"] < time.time() else ""
        return (
            f"run {holder['run_id']} by {holder['owner']} holds the runbook lock since {since}{stale}: "
            f"`drctl resume {holder['run_id']}` to finish it, or `drctl unlock --run-id {holder['run_id']}` to break it"
        )

    def break_lock(self, run_id: str) -> None:
        """Delete the lock only if `run_id` still holds it, so a typo or a race never breaks someone else's."""
        try:
            self._dynamodb.delete_item(
                TableName=self.table,
                Key=self.key,
                ConditionExpression="run_id = :run",
                ExpressionAttributeValues={":run": {"S": run_id}},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            holder = self.holder()
            current = f"it is held by {holder['run_id']}" if holder else "nobody holds it"
            raise LookupError(f"run {run_id} does not hold the lock in {self.region}: {current}") from None

