"""The records side of the lifecycle: what the database says about each patient's retention, holds and disposal.

- `patients.retained_until`: the retention date last set on the patient's chart versions (by the seed or by `drctl
  retention sync`); a patient whose policy date differs has moved (seen again) and is synced.
- `legal_holds`: one row per hold, placed and released with who, when and why; at most one in force per patient.
  Rows are never deleted, so the history of holds survives the patient's disposal (ids only, no PHI).
- `disposals`: the tombstone of a disposed patient (id, when, which run, how many versions, the digest of the keys).
  The patient's rows (patient, scans, their views) are deleted; the tombstone stays, so "where is patient X?" has an
  answer, a restored backup or a late scan naming X can be recognised, and the certificate's counts can be checked.

The DDL is idempotent and applied by each lifecycle command before it reads (as the heartbeat applies its own), so an
existing database needs no migration; the sandbox's schema includes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from dr_runbooks.lifecycle.policy import RetentionPolicy
from dr_runbooks.runbooks.canary import Database

LIFECYCLE_DDL = """
ALTER TABLE patients ADD COLUMN IF NOT EXISTS retained_until date;
CREATE TABLE IF NOT EXISTS legal_holds (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id     text NOT NULL,
    reason         text NOT NULL,
    placed_by      text NOT NULL,
    placed_at      timestamptz NOT NULL,
    released_by    text,
    released_at    timestamptz,
    release_reason text
);
CREATE UNIQUE INDEX IF NOT EXISTS legal_holds_in_force ON legal_holds (patient_id) WHERE released_at IS NULL;
CREATE TABLE IF NOT EXISTS disposals (
    patient_id     text PRIMARY KEY,
    disposed_at    timestamptz NOT NULL,
    run_id         text NOT NULL,
    chart_versions integer NOT NULL,
    keys_sha256    text NOT NULL
);
"""


@dataclass(frozen=True)
class Patient:
    patient_id: str
    practice: str
    birth_date: date
    last_visit: date
    retained_until: date | None
    held: bool

    @property
    def chart_prefix(self) -> str:
        """Every chart of the patient is under this prefix (`charts/<practice>/<patient>/<scan-id>.<ext>`)."""
        return f"charts/{self.practice}/{self.patient_id}/"

    def due(self, policy: RetentionPolicy) -> date:
        return policy.retain_until(self.birth_date, self.last_visit)


_SELECT = ("SELECT p.patient_id, p.practice, p.birth_date, p.last_visit, p.retained_until, "
           "EXISTS (SELECT 1 FROM legal_holds h WHERE h.patient_id = p.patient_id AND h.released_at IS NULL) "
           "FROM patients p")


def prepare(db: Database) -> None:
    """The lifecycle columns and tables, made if missing (one statement at a time: pg8000 prepares each). Checked
    first: ALTER TABLE takes an exclusive lock on `patients` even when the column exists."""
    present = db.execute("SELECT to_regclass('legal_holds') IS NOT NULL AND to_regclass('disposals') IS NOT NULL "
                         "AND EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'patients' "
                         "AND column_name = 'retained_until')").fetchone()[0]
    if present:
        return
    for statement in filter(None, (part.strip() for part in LIFECYCLE_DDL.split(";"))):
        db.execute(statement)


def patients(db: Database, ids: Iterable[str] | None = None) -> list[Patient]:
    """Every patient (or those of `ids` that exist), in id order."""
    if ids is None:
        rows = db.execute(f"{_SELECT} ORDER BY p.patient_id").fetchall()
    else:
        rows = db.execute(f"{_SELECT} WHERE p.patient_id = ANY(%s) ORDER BY p.patient_id", (list(ids),)).fetchall()
    return [Patient(*row) for row in rows]


def patient(db: Database, patient_id: str) -> Patient | None:
    found = patients(db, [patient_id])
    return found[0] if found else None


def disposed(db: Database, ids: Iterable[str]) -> set[str]:
    rows = db.execute("SELECT patient_id FROM disposals WHERE patient_id = ANY(%s)", (list(ids),)).fetchall()
    return {row[0] for row in rows}


def mark_synced(db: Database, patient_id: str, until: date) -> None:
    db.execute("UPDATE patients SET retained_until = %s WHERE patient_id = %s", (until, patient_id))


def hold_in_force(db: Database, patient_id: str) -> dict[str, object] | None:
    row = db.execute("SELECT id, reason, placed_by, placed_at FROM legal_holds WHERE patient_id = %s AND "
                     "released_at IS NULL", (patient_id,)).fetchone()
    return None if row is None else {"id": row[0], "reason": row[1], "placed_by": row[2],
                                     "placed_at": row[3].isoformat()}


def place_hold(db: Database, patient_id: str, reason: str, who: str, at: datetime) -> dict[str, object]:
    """The hold in force on the patient: this one, or the one already placed (idempotent)."""
    db.execute("INSERT INTO legal_holds (patient_id, reason, placed_by, placed_at) VALUES (%s, %s, %s, %s) "
               "ON CONFLICT (patient_id) WHERE released_at IS NULL DO NOTHING", (patient_id, reason, who, at))
    held = hold_in_force(db, patient_id)
    assert held is not None
    return held


def release_hold(db: Database, patient_id: str, reason: str, who: str, at: datetime) -> int:
    """Release the hold in force (if any); how many were released (0 or 1)."""
    return db.execute("UPDATE legal_holds SET released_by = %s, released_at = %s, release_reason = %s "
                      "WHERE patient_id = %s AND released_at IS NULL", (who, at, reason, patient_id)).rowcount


def holds_in_force(db: Database) -> list[dict[str, object]]:
    rows = db.execute("SELECT patient_id, reason, placed_by, placed_at FROM legal_holds WHERE released_at IS NULL "
                      "ORDER BY placed_at").fetchall()
    return [{"patient_id": r[0], "reason": r[1], "placed_by": r[2], "placed_at": r[3].isoformat()} for r in rows]


def dispose_rows(db: Database, patient_id: str, run_id: str, at: datetime, versions: int,
                 digest: str) -> dict[str, int]:
    """Delete the patient's views, scans and patient row and write the tombstone, in one transaction."""
    db.execute("BEGIN")
    try:
        views = db.execute("DELETE FROM view_history WHERE scan_id IN (SELECT scan_id FROM scans WHERE "
                           "patient_id = %s)", (patient_id,)).rowcount
        scans = db.execute("DELETE FROM scans WHERE patient_id = %s", (patient_id,)).rowcount
        rows = db.execute("DELETE FROM patients WHERE patient_id = %s", (patient_id,)).rowcount
        db.execute("INSERT INTO disposals (patient_id, disposed_at, run_id, chart_versions, keys_sha256) VALUES "
                   "(%s, %s, %s, %s, %s) ON CONFLICT (patient_id) DO NOTHING",
                   (patient_id, at, run_id, versions, digest))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return {"views": views, "scans": scans, "patients": rows}
