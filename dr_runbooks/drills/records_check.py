"""Is the restored records database the live one as of its recovery point? Checked the way a real account allows.

A scheduled AWS Backup job records nothing but the recovery point, and the live database is written every second,
so the drill can compare against neither a fingerprint taken "with the backup" (none exists on AWS, and one taken at
another moment cannot match a snapshot taken under live writes) nor the live database as a whole (it has moved on).
What it can compare is the history both share, cut at a moment the restored data itself names:

- **As of when.** The restored database's newest heartbeat row (written every minute on the writer, the restore's own
  clock: every transaction committed before it is in the snapshot). A database backed up before the first heartbeat
  falls back to the recovery point's creation time.
- **Settled history.** `SETTLE_SECONDS` before that moment, every transaction that stamped a row has committed, so
  the rows of the append-only tables (scans, view history, canaries) up to that cut must be the same, row for row,
  in the restore and in the live DR replica (row count and an order-independent md5 of the rows, both read in one
  REPEATABLE READ snapshot each). A backup that lost rows, or a restore that did, differs here; live writes after the
  cut do not.
- **Rows that change in place** (patients, users: no time to cut at): every restored key must be known to the live
  database (a restore that invents or mixes up records differs), and a table the live database has rows in must not
  come back empty.
- The live replica must have seen the restore's moment (its own newest heartbeat no older): otherwise it is behind
  the recovery point, and the drill says so instead of calling a good backup bad.

Limits, by design: a row legitimately deleted from the live database after the recovery point (a disposal, issue
13) shows as a difference of its table; a transaction open longer than `SETTLE_SECONDS` could too.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pg8000.native import identifier

from dr_runbooks.runbooks.canary import HEARTBEAT_TABLE, Database, DbEndpoint, connect

#: How long before the restore's moment the compared history ends: longer than any records transaction runs.
SETTLE_SECONDS = 60
#: The append-only tables and the column that stamps when a row was written.
APPEND_ONLY = {"scans": "scanned_at", "view_history": "viewed_at", "dr_canary": "written_at"}
#: Tables whose rows change in place, and their keys.
KEYED = {"patients": "patient_id", "users": "user_id"}


def _snapshot(connection: Database) -> None:
    connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")


def _newest_heartbeat(connection: Database) -> datetime | None:
    if not connection.execute("SELECT to_regclass(%s) IS NOT NULL", (HEARTBEAT_TABLE,)).fetchone()[0]:
        return None
    return connection.execute(f"SELECT max(written_at) FROM {identifier(HEARTBEAT_TABLE)}").fetchone()[0]


def _settled(connection: Database, table: str, column: str, cut: datetime) -> tuple[int, str]:
    """Row count and order-independent md5 of the rows stamped at or before `cut`."""
    count, checksum = connection.execute(
        "SELECT count(*), coalesce(md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))), '') "
        f"FROM {identifier(table)} AS t WHERE {identifier(column)} <= %s", (cut,)).fetchone()
    return int(count), str(checksum)


def _keys(connection: Database, table: str, key: str) -> set[str]:
    return {str(row[0]) for row in connection.execute(f"SELECT {identifier(key)} FROM {identifier(table)}").fetchall()}


def compare(restored: DbEndpoint, live: DbEndpoint, recovery_point_created: datetime) -> dict[str, Any]:
    """The restored database against the live one as of the restore's moment: `problems` (empty: it is the live
    database's history up to then), per-table counts, and the moment and cut compared at."""
    with connect(restored) as back, connect(live) as now:
        _snapshot(back)
        _snapshot(now)
        restored_beat, live_beat = _newest_heartbeat(back), _newest_heartbeat(now)
        as_of = restored_beat or recovery_point_created
        result: dict[str, Any] = {"as_of": as_of.isoformat(), "as_of_from": "the restored database's newest heartbeat"
                                  if restored_beat else "the recovery point's creation time", "tables": {}}
        if live_beat is None or live_beat < as_of:
            seen = live_beat.isoformat() if live_beat else "none"
            result["problems"] = [f"the live database's newest heartbeat ({seen}) is older than the restored data "
                                  f"({as_of.isoformat()}): it is behind the recovery point, so nothing can be compared "
                                  "yet"]
            return result
        cut = as_of - timedelta(seconds=SETTLE_SECONDS)
        result["cut"] = cut.isoformat()
        problems: list[str] = []
        for table, column in APPEND_ONLY.items():
            (got, got_sum), (want, want_sum) = _settled(back, table, column, cut), _settled(now, table, column, cut)
            result["tables"][table] = {"rows": got, "live_rows": want}
            if got != want:
                problems.append(f"{table}: {got} rows up to {cut.isoformat()} restored, the live database has {want}")
            elif got_sum != want_sum:
                problems.append(f"{table}: the same {got} rows up to {cut.isoformat()}, but their contents differ")
        for table, key in KEYED.items():
            got_keys, live_keys = _keys(back, table, key), _keys(now, table, key)
            unknown = got_keys - live_keys
            result["tables"][table] = {"rows": len(got_keys), "live_rows": len(live_keys)}
            if unknown:
                problems.append(f"{table}: {len(unknown)} restored rows unknown to the live database")
            if live_keys and not got_keys:
                problems.append(f"{table}: none restored, the live database has {len(live_keys)}")
        result["problems"] = problems
        return result
