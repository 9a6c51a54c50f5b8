"""The restore drill as an engine plan: the two restores run side by side, validation after, teardown always.

The restores wait up to an hour on AWS Backup, polling from a checkpointed job id, so on Step Functions they run as
start + poll across invocations (`engine.waits.StepPending`); so does adding the scratch cluster's DB instance
(AWS Backup restores the cluster without one, and the validations have nothing to connect to before it is up).
The validations connect to the scratch cluster (restored into the live DR cluster's subnets) and the live DR reader:
database steps of the target (DR) region. The charts are checked after the records (both read the scratch database's
one instance, and a few seconds of validation in series keep the plan series-parallel: on Step Functions the
instance is then added while the archive is still being restored, instead of after it)."""

from __future__ import annotations

from dr_runbooks.engine.plan import Plan, PollPolicy, Step

_ACTIONS = "dr_runbooks.drills.restore"
_RESTORE_POLL = PollPolicy(initial_seconds=0.1, maximum_seconds=15)


def _step(name: str, action: str, description: str, *depends_on: str, changes: bool = False,
          calls: tuple[str, ...] = (), timeout: float = 600, database: bool = False) -> Step:
    return Step(name=name, action=f"{_ACTIONS}:{action}", description=description, depends_on=depends_on,
                changes=changes, calls=calls, timeout_seconds=timeout, poll=_RESTORE_POLL,
                database="target" if database else None)


def restore_drill() -> Plan:
    return Plan(
        runbook="restore-drill",
        description="restore the latest backups into scratch resources, validate the data, tear down",
        steps=(
            _step("clean-leftovers", "clean_leftovers", "remove scratch resources an interrupted drill left",
                  changes=True, calls=("rds.DescribeDBClusters", "rds.DescribeDBInstances", "s3.ListBuckets",
                                       "rds.DeleteDBInstance", "rds.DeleteDBCluster", "s3.DeleteBucket")),
            _step("pick-recovery-points", "pick_recovery_points", "choose the database and archive recovery points",
                  calls=("backup.ListRecoveryPointsByBackupVault",)),
            _step("restore-database", "restore_database", "restore the database into a scratch cluster",
                  "clean-leftovers", "pick-recovery-points", changes=True, timeout=3600,
                  calls=("rds.DescribeDBClusters", "backup.StartRestoreJob", "backup.DescribeRestoreJob",
                         "rds.AddTagsToResource")),
            _step("restore-archive", "restore_archive", "restore the chart archive into a scratch bucket",
                  "clean-leftovers", "pick-recovery-points", changes=True, timeout=3600,
                  calls=("backup.StartRestoreJob", "backup.DescribeRestoreJob", "s3.PutBucketTagging")),
            _step("add-instance", "add_instance", "add a DB instance to the scratch cluster, wait until available",
                  "restore-database", changes=True, timeout=2400,
                  calls=("rds.DescribeDBInstances", "rds.DescribeDBClusters", "rds.CreateDBInstance")),
            _step("validate-records", "validate_records", "row counts and checksums against the backup's",
                  "add-instance", calls=("postgres SELECT count(*), md5(...) per records table",), database=True),
            _step("validate-charts", "validate_charts", "chart files exist and match their SHA-256",
                  "validate-records", "restore-archive", calls=("s3.GetObject per sampled chart file",),
                  database=True),
            _step("teardown", "teardown", "delete the scratch instance, cluster and bucket", "validate-records",
                  "validate-charts", changes=True, calls=("rds.DescribeDBInstances", "rds.DeleteDBInstance",
                                                          "rds.DeleteDBCluster", "s3.DeleteObjects",
                                                          "s3.DeleteBucket")),
            _step("verdict", "verdict", "fail the drill if a validation failed", "teardown"),
        ),
    )
