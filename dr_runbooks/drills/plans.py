"""The drills as engine plans: data only (steps name their actions by import path), so the orchestration stack reads
them without importing the drills' code (nor boto3). The restore drill: the two restores run side by side, validation
after, teardown always; the game day and replication verification follow it.

The restores wait up to an hour on AWS Backup, polling from a checkpointed job id, so on Step Functions they run as
start + poll across invocations (`engine.waits.StepPending`); so does adding the scratch cluster's DB instance
(AWS Backup restores the cluster without one, and the validations have nothing to connect to before it is up).
The validations connect to the scratch cluster (restored into the live DR cluster's subnets) and the live DR reader:
database steps of the target (DR) region. The charts are checked after the records (both read the scratch database's
one instance, and a few seconds of validation in series keep the plan series-parallel: on Step Functions the
instance is then added while the archive is still being restored, instead of after it)."""

from __future__ import annotations

from dr_runbooks.engine.plan import ChildRun, Plan, PollPolicy, Step

RESTORE_DRILL = "restore-drill"
#: The run-id label of a restore drill (RUN_ID_PATTERN: lowercase letters only).
RESTORE_LABEL = "restore"
#: Chart files a restore drill checks against their SHA-256 unless told otherwise (`drctl drill restore --sample`).
DEFAULT_SAMPLE = 100
_ACTIONS = "dr_runbooks.drills.restore"
_RESTORE_POLL = PollPolicy(initial_seconds=0.1, maximum_seconds=15)


def _step(name: str, action: str, description: str, *depends_on: str, changes: bool = False,
          calls: tuple[str, ...] = (), timeout: float = 600, database: bool = False) -> Step:
    return Step(name=name, action=f"{_ACTIONS}:{action}", description=description, depends_on=depends_on,
                changes=changes, calls=calls, timeout_seconds=timeout, poll=_RESTORE_POLL,
                database="target" if database else None)


def restore_drill() -> Plan:
    return Plan(
        runbook=RESTORE_DRILL,
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


GAME_DAY = "game-day"
#: The run-id label of a game day (RUN_ID_PATTERN: lowercase letters only).
GAME_DAY_LABEL = "gameday"
#: A leg waits for a whole switchover, replication and DNS included.
LEG_TIMEOUT_SECONDS = 3600
#: The archive check fits one Lambda invocation (15 min, less the hand-back margin of a polled step); an archive too
#: large to list in that time is verified by S3 Inventory (`drctl verify replication --inventory`), not here.
CHECK_TIMEOUT_SECONDS = 780
_GAME_DAY_ACTIONS = "dr_runbooks.drills.gameday"
_LEG = "dr_runbooks.drills.legs:switchover_leg"


def game_day() -> Plan:
    return Plan(
        runbook=GAME_DAY,
        description="switch over to the DR region, verify and serve there, switch back; RTO and RPO per leg",
        locks=False,
        steps=(
            Step(name="switchover-to-dr", action=_LEG, changes=True, timeout_seconds=LEG_TIMEOUT_SECONDS,
                 description="the on-call switchover to the DR region, as its own run",
                 child=ChildRun(runbook="switchover", target="dr")),
            Step(name="verify-replication", action=f"{_GAME_DAY_ACTIONS}:verify_replication",
                 depends_on=("switchover-to-dr",),
                 description="the DR archive and its replica hold the same current versions",
                 timeout_seconds=CHECK_TIMEOUT_SECONDS,
                 calls=("s3.ListObjectsV2({target_region}: {target_bucket})",
                        "s3.ListObjectsV2({source_region}: {source_bucket})")),
            Step(name="serve-from-dr", action=f"{_GAME_DAY_ACTIONS}:serve_from_dr", depends_on=("switchover-to-dr",),
                 description="a chart read and checked against its scan row, a canary row written, in DR",
                 database="target", changes=True,
                 calls=("secretsmanager.GetSecretValue({target_region}: {db_secret_name})",
                        "s3.GetObject({target_region}: {target_bucket})", "postgres INSERT canary row")),
            Step(name="switchover-to-primary", action=_LEG, changes=True, timeout_seconds=LEG_TIMEOUT_SECONDS,
                 depends_on=("verify-replication", "serve-from-dr"),
                 description="the on-call switchover back to the primary region, as its own run",
                 child=ChildRun(runbook="switchover", target="primary")),
            Step(name="verdict", action=f"{_GAME_DAY_ACTIONS}:verdict", depends_on=("switchover-to-primary",),
                 description="fail the game day if a check in DR failed, naming it"),
        ),
    )


VERIFY_REPLICATION = "verify-replication"
#: The run-id label of a verification (RUN_ID_PATTERN: lowercase letters only).
VERIFY_LABEL = "verify"
#: The comparison fits one Lambda invocation (15 min, less the hand-back margin of a polled step); an archive too large
#: to list in that time is compared from S3 Inventory reports (`drctl verify replication --inventory`).
COMPARE_TIMEOUT_SECONDS = 780
_VERIFY_ACTIONS = "dr_runbooks.verify.plan"


def verify_replication() -> Plan:
    return Plan(
        runbook=VERIFY_REPLICATION,
        description="compare the writer's chart archive with its replica in the partner region",
        locks=False,
        steps=(
            Step(name="compare-archives", action=f"{_VERIFY_ACTIONS}:compare_archives",
                 description="list both chart archives partition by partition and merge them key by key",
                 timeout_seconds=COMPARE_TIMEOUT_SECONDS,
                 calls=("s3.ListObjectsV2({writer_region}: {writer_bucket})",
                        "s3.ListObjectsV2({replica_region}: {replica_bucket})",
                        "s3.ListObjectVersions per key present on one side only")),
            Step(name="verdict", action=f"{_VERIFY_ACTIONS}:verdict", description="fail the run if the archives differ",
                 depends_on=("compare-archives",)),
        ),
    )
