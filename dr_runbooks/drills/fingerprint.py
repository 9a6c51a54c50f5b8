"""Table fingerprints: the row count and an order-independent checksum of each records table.

A restore drill compares the restored database with the fingerprint taken when its backup was made, so "the data
came back" is checked row by row, not inferred from a job status. The fingerprint is kept in the runbook table of
both regions under the recovery point ARNs it belongs to (the primary's point and its copy in the DR vault), so a
drill running in the DR region alone finds it.

The tables are the records database's own (every base table of its `public` schema, read from the catalog), not a list
kept here: a table the schema gains is fingerprinted without a change, and this module needs nothing from the
sandbox (whose schema module needs psycopg, which the runbook Lambda package does not carry). The one exception is
the heartbeat table, which the writer region adds a row to every minute by design: a backup taken a moment after its
fingerprint would otherwise differ by a heartbeat.
"""

from __future__ import annotations

import json
from typing import Any

from pg8000.native import identifier

from dr_runbooks.runbooks.canary import HEARTBEAT_TABLE, DbEndpoint, connect

Fingerprint = dict[str, dict[str, Any]]


def fingerprint(endpoint: DbEndpoint) -> Fingerprint:
    """`{table: {"rows": n, "checksum": md5}}` of every records table, read in one snapshot (REPEATABLE READ)."""
    with connect(endpoint) as connection:
        connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        tables = [name for (name,) in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_type = 'BASE TABLE' AND table_name <> %s ORDER BY table_name", (HEARTBEAT_TABLE,)).fetchall()]
        found: Fingerprint = {}
        for table in tables:
            count, checksum = connection.execute(
                "SELECT count(*), coalesce(md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))), '') "
                f"FROM {identifier(table)} AS t").fetchone()
            found[table] = {"rows": count, "checksum": checksum}
        connection.execute("ROLLBACK")
    return found


def differences(expected: Fingerprint, restored: Fingerprint) -> list[str]:
    """One line per table whose rows or checksum differ (empty: identical); a backup fingerprint of no table proves
    nothing, so it is a difference too."""
    if not expected:
        return ["the backup fingerprint covers no table"]
    problems = []
    for table in sorted(expected.keys() | restored.keys()):
        want, got = expected.get(table), restored.get(table)
        if want is None or got is None:
            problems.append(f"{table}: {'not in the backup fingerprint' if want is None else 'missing after restore'}")
        elif want["rows"] != got["rows"]:
            problems.append(f"{table}: {got['rows']} rows restored, {want['rows']} backed up")
        elif want["checksum"] != got["checksum"]:
            problems.append(f"{table}: same {got['rows']} rows but the checksum differs (rows changed)")
    return problems


def _key(recovery_point_arn: str) -> dict[str, Any]:
    return {"pk": {"S": f"backup-fingerprint#{recovery_point_arn}"}, "sk": {"S": "fingerprint"}}


def store(dynamodb: Any, table: str, recovery_point_arn: str, found: Fingerprint) -> None:
    dynamodb.put_item(TableName=table, Item={**_key(recovery_point_arn), "doc": {"S": json.dumps(found)}})


def load(dynamodb: Any, table: str, recovery_point_arn: str) -> Fingerprint | None:
    item = dynamodb.get_item(TableName=table, Key=_key(recovery_point_arn), ConsistentRead=True).get("Item")
    return json.loads(item["doc"]["S"]) if item else None
