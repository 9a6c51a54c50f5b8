"""One runbook at a time per environment, whichever direction: a lease in the runbook table of every region.

The lock is one item (`lock#<env>`) in the runbook table of each region, taken in a fixed order (the regions sorted)
with a conditional put per region, all or nothing: if any region that answers refuses, what was taken is released and
the run is refused. The target region must answer; a region that does not answer within a short, bounded timeout
(the probe clients' connect/read timeouts) is dark, and the surviving region's lock suffices: the estate's other
runbooks reach that table too, so they are refused there.

The item is a lease: the holder renews it in the background every `lease/12` seconds (5 s of a 60 s lease) while it
runs; a holder is alive iff its lease has not expired. A run that ends releases its lock; a run that stops without
ending (an exception, Ctrl-C) keeps it but expires its lease at once, and a killed process lets it expire. A lock
whose lease expired is never taken silently: only its own run takes it again (`drctl resume`), or `drctl unlock`
breaks it, so the next operator decides what happens to the half-done run.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology

#: How long a lease lasts unless renewed; `EHR_DR_LEASE_SECONDS` overrides it (the sandbox's tests shorten it).
LEASE_SECONDS = float(os.environ.get("EHR_DR_LEASE_SECONDS", "60"))
#: Renewals per lease: one lost renewal (a slow call) never lets a live holder look dead.
RENEWALS_PER_LEASE = 12


class LockHeld(Exception):
    """The runbook lock cannot be taken or broken now; `str()` says who holds it (alive or not) and what to do,
    or which region did not answer."""


class LockLost(LockHeld):
    """Our lease was broken or taken by another run while we ran (`drctl unlock` of a run it thought dead)."""


@dataclass(frozen=True)
class Holder:
    run_id: str
    owner: str
    acquired_at: float
    renewed_at: float
    expires_at: float
    region: str

    @property
    def alive(self) -> bool:
        return self.expires_at > time.time()


class RunLock:
    """The environment's lock over the runbook tables `tables` (region -> table); `required` must answer."""

    def __init__(self, aws: AwsSession, tables: Mapping[str, str], env_name: str, required: str,
                 lease_seconds: float | None = None) -> None:
        if required not in tables:
            raise ValueError(f"no runbook table for {required}")
        self.aws = aws
        self.tables = dict(sorted(tables.items()))
        self.env_name = env_name
        self.required = required
        self.key = {"pk": {"S": f"lock#{env_name}"}, "sk": {"S": "lock"}}
        self.lease_seconds = lease_seconds or LEASE_SECONDS
        #: Regions whose item we hold, and regions that did not answer when we took it.
        self.taken: list[str] = []
        self.dark: list[str] = []
        #: Why the lease was lost while we ran (set by the renewal), else None.
        self.lost: str | None = None
        self._stop = threading.Event()
        self._renewal: threading.Thread | None = None

    @classmethod
    def of_environment(cls, aws: AwsSession, topology: Topology, required: str,
                       lease_seconds: float | None = None) -> RunLock:
        tables = {region: resources.runbook_table for region, resources in topology.regions.items()}
        return cls(aws, tables, topology.env_name, required, lease_seconds)

    def _dynamodb(self, region: str) -> Any:
        return self.aws.client("dynamodb", region, probe=True)

    def acquire(self, run_id: str, owner: str) -> None:
        """Take the lease in every region that answers, or refuse (and keep none). Free, or ours with an expired
        lease (a resumed run): a live lease, even our own run's, is never taken twice."""
        self.taken, self.dark, self.lost = [], [], None
        now = time.time()
        item = {**self.key, "run_id": {"S": run_id}, "owner": {"S": owner}, "acquired_at": {"N": f"{now:.3f}"},
                "renewed_at": {"N": f"{now:.3f}"}, "expires_at": {"N": f"{now + self.lease_seconds:.3f}"}}
        for region, table in self.tables.items():
            try:
                self._dynamodb(region).put_item(
                    TableName=table, Item=item,
                    ConditionExpression="attribute_not_exists(pk) OR (run_id = :run AND expires_at < :now)",
                    ExpressionAttributeValues={":run": {"S": run_id}, ":now": {"N": f"{now:.3f}"}},
                )
            except ClientError as error:
                self._give_back(run_id)
                if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    raise LockHeld(self.describe_holder()) from None
                raise LockHeld(f"cannot take the runbook lock in {region}: {_first_line(error)}") from None
            except BotoCoreError as error:
                if region == self.required:
                    self._give_back(run_id)
                    raise LockHeld(f"cannot take the runbook lock in {region}, the run's target: "
                                   f"{_first_line(error)}") from None
                self.dark.append(region)
                continue
            self.taken.append(region)

    def _give_back(self, run_id: str) -> None:
        """All or nothing: a refused acquisition releases what it took in the regions before."""
        for region in self.taken:
            self._delete(region, self.tables[region], run_id, dead_only=False)
        self.taken = []

    def adopt(self, run_id: str) -> None:
        """A later invocation of the run (a Step Functions task: a new process) takes over the lease its start took:
        the regions where `run_id` holds it. `LockLost` when another run holds it anywhere, or nobody does."""
        holders = [holder for region in self.tables if (holder := self._holder_in(region)) is not None]
        others = [holder for holder in holders if holder.run_id != run_id]
        if others or not holders:
            found = f"{others[0].run_id} holds it in {others[0].region}" if others else "nobody holds it"
            raise LockLost(f"run {run_id} lost the runbook lock: {found}")
        self.taken = [holder.region for holder in holders]

    def renew_in_background(self, run_id: str) -> None:
        """Renew the lease every `lease/12` s until `stop()` (a daemon thread: it dies with the process)."""
        self._stop.clear()
        self._renewal = threading.Thread(target=self._renew_until_stopped, args=(run_id,), daemon=True,
                                         name=f"lease-{run_id}")
        self._renewal.start()

    def _renew_until_stopped(self, run_id: str) -> None:
        while not self._stop.wait(self.lease_seconds / RENEWALS_PER_LEASE):
            try:
                self.renew(run_id)
            except LockLost as lost:
                self.lost = str(lost)
                return

    def renew(self, run_id: str) -> None:
        """Extend our lease where we hold it. A region that does not answer is skipped (a dark region must not kill
        the run); one where another run holds the lock, or nobody, means we lost it: `LockLost`."""
        now = time.time()
        for region in self.taken:
            try:
                self._dynamodb(region).update_item(
                    TableName=self.tables[region], Key=self.key,
                    UpdateExpression="SET renewed_at = :now, expires_at = :expires",
                    ConditionExpression="run_id = :run",
                    ExpressionAttributeValues={":run": {"S": run_id}, ":now": {"N": f"{now:.3f}"},
                                               ":expires": {"N": f"{now + self.lease_seconds:.3f}"}},
                )
            except ClientError as error:
                if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    raise LockLost(f"run {run_id} lost the runbook lock in {region}: "
                                   f"{self._holder_in(region) or 'nobody holds it'}") from None
            except BotoCoreError:
                continue

    def stop(self) -> None:
        """Stop renewing (the run ended, one way or another)."""
        self._stop.set()
        if self._renewal is not None and self._renewal is not threading.current_thread():
            self._renewal.join()
        self._renewal = None

    def release(self, run_id: str) -> None:
        """Release our lock wherever it answers; a lock already broken or held by someone else is left alone. Where we
        took it, the delete gets a runbook client's patience (botocore's standard retries): a throttle or a 5xx must
        not leave the lock of a finished run behind (the model-based test found that under load); elsewhere (a region
        dark when we took it) one quick try."""
        self.stop()
        for region, table in self.tables.items():
            self._delete(region, table, run_id, dead_only=False, patient=region in self.taken)

    def expire(self, run_id: str) -> None:
        """The run stopped without ending: keep the lock (the next operator resumes or unlocks) but show it dead."""
        self.stop()
        now = f"{time.time():.3f}"
        for region in self.taken:
            try:
                self._dynamodb(region).update_item(
                    TableName=self.tables[region], Key=self.key, UpdateExpression="SET expires_at = :now",
                    ConditionExpression="run_id = :run",
                    ExpressionAttributeValues={":run": {"S": run_id}, ":now": {"N": now}},
                )
            except (ClientError, BotoCoreError):
                continue  # not ours any more, or dark: its lease runs out on its own

    def break_lock(self, run_id: str) -> list[str]:
        """`drctl unlock`: delete `run_id`'s lock, only if its lease expired, in every region that answers; a typo or a
        race never breaks someone else's, nor a live run's. Returns the regions where it was broken."""
        holders = self.holders()
        alive = [holder for holder in holders if holder.alive]
        if alive:
            raise LockHeld(self.describe(alive[0]))
        if not any(holder.run_id == run_id for holder in holders):
            current = f"it is held by {holders[0].run_id}" if holders else "nobody holds it"
            raise LockHeld(f"run {run_id} does not hold the runbook lock: {current}")
        return [region for region, table in self.tables.items() if self._delete(region, table, run_id, dead_only=True)]

    def _delete(self, region: str, table: str, run_id: str, dead_only: bool, patient: bool = False) -> bool:
        condition = "run_id = :run" + (" AND expires_at < :now" if dead_only else "")
        values = {":run": {"S": run_id}} | ({":now": {"N": f"{time.time():.3f}"}} if dead_only else {})
        try:
            self.aws.client("dynamodb", region, probe=not patient).delete_item(
                TableName=table, Key=self.key, ConditionExpression=condition, ExpressionAttributeValues=values)
        except (ClientError, BotoCoreError):
            return False  # not ours (or not dead), or dark
        return True

    def check_free(self) -> None:
        """Refuse early (before any preflight) when a run holds the lock in a region that answers."""
        holders = self.holders()
        if holders:
            raise LockHeld(self.describe(holders[0]))

    def check_resumable(self, run_id: str) -> None:
        """`drctl resume`: refuse while any run is alive (ours too: the same run started twice), or another run holds
        the lock."""
        for holder in self.holders():
            if holder.alive or holder.run_id != run_id:
                raise LockHeld(self.describe(holder))

    def holders(self) -> list[Holder]:
        """Who holds the lock in each region that answers, live holders first."""
        found = [holder for region in self.tables if (holder := self._holder_in(region)) is not None]
        return sorted(found, key=lambda holder: not holder.alive)

    def holder(self) -> Holder | None:
        found = self.holders()
        return found[0] if found else None

    def _holder_in(self, region: str) -> Holder | None:
        try:
            item = self._dynamodb(region).get_item(TableName=self.tables[region], Key=self.key,
                                                   ConsistentRead=True).get("Item")
        except BotoCoreError:
            return None  # dark: it holds nobody we could wait for
        if not item:
            return None
        return Holder(run_id=item["run_id"]["S"], owner=item["owner"]["S"],
                      acquired_at=float(item["acquired_at"]["N"]),
                      renewed_at=float(item.get("renewed_at", item["acquired_at"])["N"]),
                      expires_at=float(item["expires_at"]["N"]), region=region)

    def describe_holder(self) -> str:
        holder = self.holder()
        return self.describe(holder) if holder else "the lock changed hands while we looked; retry"

    def describe(self, holder: Holder) -> str:
        """The one line a refusal prints: who, which run, since when, alive or not, and the exact next command."""
        since = datetime.fromtimestamp(holder.acquired_at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        head = f"run {holder.run_id} by {holder.owner} holds the runbook lock since {since}"
        now = time.time()
        if holder.alive:
            return f"{head} and is alive (lease renewed {now - holder.renewed_at:.0f} s ago): wait for it to end"
        options = f"--env {self.env_name} --mfa-serial ARN --mfa-code CODE"
        return (f"{head} but is not running (its lease expired {now - holder.expires_at:.0f} s ago): "
                f"finish it with `drctl resume {holder.run_id} {options}`, or abandon it with "
                f"`drctl unlock --run-id {holder.run_id} {options}`")


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0]
