"""The backup plans' schedules: what AWS Backup does on each plan's cron, the sandbox does on an accelerated clock.

In AWS each region's plan (stacks/backup.py: rules `continuous`, `hourly`, `daily`, each with a copy action to the
partner region's vault) starts a backup job of every selected resource when a rule's `ScheduleExpression` (a cron in
UTC) fires, and once that job completed, a copy job per copy action (AWS Backup Developer Guide, "Backup plans" and
"Creating backup copies across AWS Regions"; API reference, BackupRule: "ScheduleExpression", "CopyActions"). Here a
thread of the server plays that schedule fast: every `SandboxContext.backup_plan_seconds` stands for one hour of the
plans' clock (which starts at the sandbox's start, in UTC), and the rules of the **writer's** region whose cron
fires in that hour run through the same emulated StartBackupJob and StartCopyJob as any caller's (`BackupJobs`), so
recovery points appear in the writer's vault and their copies in the partner's, as they would on AWS without anyone
calling StartBackupJob. The plans are read from moto (provisioning creates them as the stack defines them), so a rule
or a copy action changed there changes what runs.

Simplifications, on purpose:
- only the writer region's plan runs (on AWS the secondary's plan also backs up the secondary cluster and the replica
  bucket: recovery points of the same data, which would only double the sandbox's work);
- the selection is the region's records cluster and chart bucket, the two data sets the drills restore (moto has no
  CreateBackupSelection; the stack's selection also names the evidence bucket and the runbook table);
- of a cron only the hours field is read (`*`, `n`, `a-b`, `*/n`, lists): every rule of the stacks fires daily or
  hourly; rules due in the same hour each make their own backup;
- a region whose endpoints are dark (`fault region-down`) runs nothing (its AWS Backup is as dark as the rest), and a
  copy action to a dark region is not started (on AWS its copy job would fail).

Off by default (`backup_plan_seconds` None: tests stay fast and call StartBackupJob or `take_backups` when they need
a backup); `drctl sandbox up` turns it on (`--backup-plan-seconds`, five minutes an hour by default). Action
`backup-plan-now` plays the next hour at once and waits for its jobs; status section `backup_plans`.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from ehr_dr_sandbox.backup_jobs import BackupJobs
from ehr_dr_sandbox.context import SandboxContext
from ehr_dr_sandbox.dispatch import Registry
from ehr_dr_sandbox.emulated_api import ApiError
from ehr_dr_sandbox.periodic import Periodic
from ehr_dr_sandbox.postgres_pair import PostgresError

ACTION = "backup-plan-now"
#: How long one hour's jobs may take before the schedule stops waiting for them (they go on; their copies do not).
JOB_TIMEOUT_SECONDS = 300.0
_CRON = re.compile(r"^cron\(\s*(\S+)\s+(\S+)\s+\S+\s+\S+\s+\S+\s+\S+\s*\)$")
_FINAL = ("COMPLETED", "FAILED", "ABORTED", "EXPIRED")


def fires_in_hour(expression: str, hour: int) -> bool:
    """Whether an AWS cron expression (`cron(minutes hours day-of-month month day-of-week year)`) fires in `hour`
    (UTC) of a day; its hours field only (see the module docstring). Anything else (a rate, a malformed cron): no."""
    match = _CRON.match(expression.strip())
    if match is None:
        return False
    for part in match[2].split(","):
        base, _, step = part.partition("/")
        first, _, last = base.partition("-")
        try:
            start = 0 if first in ("*", "?") else int(first)
            end = 23 if first in ("*", "?") or (step and not last) else int(last or first)
            every = int(step or 1)
        except ValueError:
            return False
        if start <= hour <= end and (hour - start) % every == 0:
            return True
    return False


class BackupPlanSchedule:
    """Plays one hour of the plans' clock every `interval` seconds in a daemon thread, and on demand."""

    def __init__(self, context: SandboxContext, jobs: BackupJobs) -> None:
        self.context = context
        self.jobs = jobs
        self.clock = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        self.hours = 0
        self.last: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.periodic = Periodic("sandbox-backup-plans", context.backup_plan_seconds, self.tick, context.log)

    def tick(self) -> dict[str, Any]:
        """The next hour of the plans' clock: the writer's rules due in it, their backups and then their copies."""
        with self._lock:
            self.clock += timedelta(hours=1)
            self.hours += 1
            self.last = {"at": self.clock.isoformat(), **self._run(self.clock)}
            return self.last

    def _run(self, at: datetime) -> dict[str, Any]:
        try:
            region = self.jobs.pair.writer().region
        except PostgresError as error:
            return {"skipped": f"no node writes ({str(error).splitlines()[0]})"}
        if region in self.context.down_regions:
            return {"region": region, "skipped": f"the writer's region {region} is dark"}
        here = self.context.topology.in_region(region)
        resources = (f"arn:aws:rds:{region}:{self.context.topology.account}:cluster:{here.db_cluster_id}",
                     f"arn:aws:s3:::{here.chart_bucket}")
        started: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for plan in self.context.backend("backup", region).plans.values():
            if plan.deletion_date is not None:
                continue
            for rule in plan.backup_plan["Rules"]:
                if not fires_in_hour(rule.get("ScheduleExpression", ""), at.hour):
                    continue
                plan.last_execution_date = time.time()
                for resource in resources:
                    started.append((rule, self.jobs.start_backup_job(region, {
                        "BackupVaultName": rule["TargetBackupVaultName"], "ResourceArn": resource,
                        "IamRoleArn": here.backup_role_arn})))
        copies = [self._copy(region, rule, job, here.backup_role_arn) for rule, job in started]
        return {"region": region, "rules": sorted({rule["RuleName"] for rule, _ in started}),
                "backups": [job["RecoveryPointArn"] for _, job in started],
                "copies": [copy for batch in copies for copy in batch]}

    def _copy(self, region: str, rule: dict[str, Any], job: dict[str, Any], role: str) -> list[str]:
        """Once the rule's backup completed, one copy job per copy action (to a region that answers)."""
        backup = self.jobs.backup_jobs[job["BackupJobId"]]
        deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
        while backup.state not in _FINAL and time.monotonic() < deadline:
            time.sleep(0.05)
        if backup.state != "COMPLETED":
            return []
        copied = []
        for action in rule.get("CopyActions", []):
            destination = action["DestinationBackupVaultArn"]
            if destination.split(":")[3] in self.context.down_regions:
                continue
            try:
                copy = self.jobs.start_copy_job(region, {
                    "RecoveryPointArn": backup.recovery_point_arn, "SourceBackupVaultName": backup.backup_vault_name,
                    "DestinationBackupVaultArn": destination, "IamRoleArn": role})
            except ApiError as error:
                self.context.log.warning("backup plan: copy of %s not started: %s", backup.recovery_point_arn, error)
                continue
            copied.append(self.jobs.copy_jobs[copy["CopyJobId"]].destination_recovery_point_arn)
        return copied

    def report(self) -> dict[str, Any]:
        return {"interval_seconds": self.periodic.interval, "hours_played": self.hours, "clock": self.clock.isoformat(),
                "last": self.last}


def install(registry: Registry, context: SandboxContext, jobs: BackupJobs) -> BackupPlanSchedule:
    """Called by the records database's install (the jobs run over its PostgreSQL pair); starts once provisioned."""
    schedule = BackupPlanSchedule(context, jobs)
    context.on_stop(schedule.periodic.stop)

    @registry.action(ACTION)
    def now(arguments: dict[str, Any]) -> dict[str, Any]:
        played = schedule.tick()
        jobs.wait_idle()
        return played

    registry.report("backup_plans")(schedule.report)
    context.on_ready(schedule.periodic.start)
    return schedule
