"""The lifecycle runbooks as plans (data the engine runs, like every runbook). Run ids carry a one-word label."""

from __future__ import annotations

from dr_runbooks.engine.plan import Plan, Step

_STEPS = "dr_runbooks.lifecycle.steps"
RETENTION_SYNC, LEGAL_HOLD, LEGAL_RELEASE, DISPOSAL = "retention-sync", "legal-hold", "legal-release", "disposal"
#: The run-id label of each (lowercase letters only: `engine.journal.RUN_ID_PATTERN`).
LABELS = {RETENTION_SYNC: "retention", LEGAL_HOLD: "hold", LEGAL_RELEASE: "release", DISPOSAL: "dispose"}
#: Walking a large archive patient by patient takes long; an archive-wide change goes to S3 Batch Operations.
LONG_TIMEOUT_SECONDS = 3 * 3600
_LIST = "s3.ListObjectVersions(each region's chart bucket, prefix charts/<practice>/<patient>/)"
_HEAD = "s3.HeadObject(each version: its retain-until and legal hold)"


_MANIFEST = "the run's region's evidence bucket, lifecycle/moved/<run id>.json"


def _step(name: str, action: str, description: str, *depends_on: str, changes: bool = True,
          calls: tuple[str, ...] = (), timeout: float = 300, database: bool = True) -> Step:
    """A lifecycle step; `database`: it connects to the writer's records database (the run's region)."""
    return Step(name=name, action=f"{_STEPS}:{action}", description=description, depends_on=depends_on,
                changes=changes, calls=calls, timeout_seconds=timeout, database="target" if database else None)


def retention_sync() -> Plan:
    """Split where the work can run on AWS: the database steps in the records VPC, the charts of both regions from
    outside it (the manifest between them: `steps.MOVED_PREFIX`)."""
    return Plan(runbook=RETENTION_SYNC, description="extend the retention of the charts of patients seen again",
                steps=(
                    _step("find-moved", "find_moved",
                          "the patients whose retention date moved, and their dates, as a manifest",
                          calls=("postgres SELECT patients, legal_holds", f"s3.PutObject({_MANIFEST})")),
                    _step("extend-retention", "extend_retention",
                          "every chart version of the moved patients retained until their date, in both regions",
                          "find-moved", timeout=LONG_TIMEOUT_SECONDS, database=False,
                          calls=(f"s3.GetObject({_MANIFEST})", _LIST,
                                 "s3.GetObjectRetention(each version: its retain-until)",
                                 "s3.PutObjectRetention(COMPLIANCE, each version retained less long)")),
                    _step("mark-synced", "mark_synced", "the moved patients recorded as synced", "extend-retention",
                          calls=(f"s3.GetObject({_MANIFEST})", "postgres UPDATE patients SET retained_until")),
                ))


def legal_hold() -> Plan:
    return Plan(runbook=LEGAL_HOLD, description="place a legal hold on a patient's records and charts", steps=(
        _step("record-hold", "record_hold", "record the hold (who, why, when) on the patient",
              calls=("postgres INSERT INTO legal_holds",)),
        _step("hold-charts", "hold_charts", "legal hold ON on every chart version in both regions", "record-hold",
              calls=(_LIST, _HEAD, "s3.PutObjectLegalHold(ON)"), timeout=900),
    ))


def legal_release() -> Plan:
    return Plan(runbook=LEGAL_RELEASE, description="release a patient's legal hold", steps=(
        _step("release-charts", "release_charts", "legal hold OFF on every chart version in both regions",
              calls=(_LIST, _HEAD, "s3.PutObjectLegalHold(OFF)"), timeout=900),
        _step("release-record", "release_record", "record the release (who, why, when)", "release-charts",
              calls=("postgres UPDATE legal_holds SET released_at",)),
    ))


def disposal() -> Plan:
    return Plan(runbook=DISPOSAL, description="dispose of the records of patients past retention and under no hold",
                steps=(
                    _step("dispose-patients", "dispose_patients",
                          "per patient: re-check, delete every chart version in both regions, verify, delete rows",
                          timeout=LONG_TIMEOUT_SECONDS,
                          calls=("postgres SELECT patients, legal_holds", _LIST, _HEAD,
                                 "s3.DeleteObject(VersionId: each version, both regions)",
                                 "postgres DELETE view_history, scans, patients; INSERT INTO disposals")),
                    _step("certify", "certify", "the certificate of destruction's facts", "dispose-patients",
                          changes=False),
                ))


PLANS = {RETENTION_SYNC: retention_sync, LEGAL_HOLD: legal_hold, LEGAL_RELEASE: legal_release, DISPOSAL: disposal}
