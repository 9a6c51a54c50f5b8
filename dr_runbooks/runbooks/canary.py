"""Canaries and heartbeats: the data that tells how fresh the DR copy is, in the database and in the archive.

- A **canary** is a row in `dr_canary` and an object `dr-canary/<run-id>`, written by a runbook before an event and
  looked for after: after a switchover both must be in the new primary (RPO 0).
- A **heartbeat** is a row in `dr_heartbeat` and an object `dr-heartbeat/<UTC timestamp>` in the writer's chart bucket,
  written every minute in whichever region writes (a scheduled function in AWS, the sandbox itself locally), so at any
  moment the newest heartbeat the other region holds bounds what a failover to it would lose.
- A **probe** (`dr-probe/...`, the failover's proof that the archive takes writes) is neither: it is written by the
  region that is about to write, so it must never be mistaken for data that replicated (listings read only the canary
  and heartbeat prefixes).

RPO is measured from the data, not inferred from a metric: the newest canary or heartbeat row the target's reader
holds and the newest canary or heartbeat object its bucket holds; the database and the archive lose data separately,
so the older of the two bounds the loss. The database side sits behind `DbCanary`, so the runbooks need only an
endpoint and credentials (from DescribeDBClusters and Secrets Manager) and the SQL lives in one place.

The database is reached with pg8000 (pure Python: the runbook Lambda package carries no native libpq, OpenSSL or
Kerberos). TLS is decided by the host, never by a flag a caller could forget: every host but a loopback address gets
verify-full TLS (the chain against the CA bundle named by `PGSSLROOTCERT`, libpq's variable, and the host name
against the certificate; Aurora's `rds.force_ssl` refuses plaintext anyway). A loopback host is the sandbox's
embedded PostgreSQL, which has no TLS and whose bytes never leave the machine.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import ssl
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Protocol

import pg8000.dbapi
from pydantic import BaseModel

from dr_runbooks.engine import calls

CANARY_PREFIX = "dr-canary/"
HEARTBEAT_PREFIX = "dr-heartbeat/"
#: Where a runbook's write probes go: outside every prefix the freshness listings read.
PROBE_PREFIX = "dr-probe/"
#: Heartbeat object keys sort as they were written: `dr-heartbeat/20261129T034000Z`.
HEARTBEAT_KEY_FORMAT = "%Y%m%dT%H%M%SZ"
#: How far back the newest heartbeat object is looked for first, then further: ListObjectsV2 from a StartAfter key
#: reads only the newer keys, so finding the newest of years of heartbeats costs one page while they flow.
HEARTBEAT_SEARCH_WINDOWS = (timedelta(hours=1), timedelta(days=2), timedelta(days=60), None)
#: Heartbeat rows older than this are deleted by the writer as it beats: the row tells freshness, not history (the
#: objects stay, under the archive's Object Lock, like every object of the bucket).
HEARTBEAT_ROW_RETENTION = timedelta(days=35)
HEARTBEAT_TABLE = "dr_heartbeat"
#: The heartbeat table; the beat creates it if missing (idempotent), so a first deployment needs no migration.
HEARTBEAT_DDL = f"""
CREATE TABLE IF NOT EXISTS {HEARTBEAT_TABLE} (
    written_at   timestamptz PRIMARY KEY,
    region       text NOT NULL
);
"""
#: libpq's name for the file of CA certificates that vouch for the server: on AWS, the RDS CA bundle.
CA_BUNDLE_VARIABLE = "PGSSLROOTCERT"
#: How long the database may take to accept the TCP connection: an endpoint behind a closed security group fails the
#: step in seconds instead of at Lambda's timeout.
CONNECT_TIMEOUT_S = 5
#: How long one read may wait (TLS handshake, login, a query's answer): comparing a large table takes minutes,
#: but a stalled server must fail the step with an error before Lambda's 900 s end the invocation without one.
READ_TIMEOUT_S = 600


class DbEndpoint(BaseModel):
    host: str
    port: int
    database: str
    username: str
    password: str


class DatabaseTlsError(RuntimeError):
    """The database cannot be reached over verified TLS from here (one line: what to set)."""


def tls_context(host: str) -> ssl.SSLContext | None:
    """The TLS a connection to `host` must use: None (plaintext) only for a loopback address, else verify-full."""
    if host == "localhost" or _is_loopback_address(host):
        return None
    bundle = os.environ.get(CA_BUNDLE_VARIABLE)
    if not bundle:
        raise DatabaseTlsError(f"cannot verify the TLS certificate of {host}: set {CA_BUNDLE_VARIABLE} to the RDS CA "
                               "bundle (global-bundle.pem)")
    try:
        # CERT_REQUIRED, host name checked, TLS 1.2 or newer: Python's defaults for a client context.
        return ssl.create_default_context(cafile=bundle)
    except (OSError, ssl.SSLError) as error:
        raise DatabaseTlsError(f"{CA_BUNDLE_VARIABLE}={bundle} is not a readable CA bundle: {error}") from None


def _is_loopback_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: only "localhost" is taken as loopback, never resolved (DNS could say anything)
        return False


class Database:
    """An open connection in autocommit, shaped as the callers use it: `execute(sql, params).fetchone()/fetchall()`
    (pg8000's DB-API cursor; `%s` placeholders), closed when the `with` block ends."""

    def __init__(self, connection: pg8000.dbapi.Connection):
        self._connection = connection

    def execute(self, query: str, params: Sequence[Any] = ()) -> pg8000.dbapi.Cursor:
        cursor = self._connection.cursor()
        cursor.execute(query, params)
        return cursor

    def __enter__(self) -> Database:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None,
                 ) -> None:
        self._connection.close()


def connect(endpoint: DbEndpoint) -> Database:
    """Log in to the records database (SCRAM or MD5, as the server asks) over the TLS `tls_context` requires."""
    context = tls_context(endpoint.host)
    sock = socket.create_connection((endpoint.host, endpoint.port), timeout=CONNECT_TIMEOUT_S)
    sock.settimeout(READ_TIMEOUT_S)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    try:
        connection = pg8000.dbapi.connect(user=endpoint.username, password=endpoint.password, host=endpoint.host,
                                          database=endpoint.database, sock=sock,
                                          ssl_context=False if context is None else context)
    except BaseException:
        sock.close()
        raise
    connection.autocommit = True
    return Database(connection)


class DbCanary(Protocol):
    def write(self, endpoint: DbEndpoint, run_id: str, region: str) -> datetime: ...

    def find(self, endpoint: DbEndpoint, run_id: str) -> datetime | None: ...

    def newest(self, endpoint: DbEndpoint) -> datetime | None: ...


class PostgresCanary:
    """`dr_canary(run_id text primary key, region text, written_at timestamptz)` and `dr_heartbeat` in the records
    database."""

    def write(self, endpoint: DbEndpoint, run_id: str, region: str) -> datetime:
        with calls.waiting(), connect(endpoint) as connection:
            connection.execute(
                "INSERT INTO dr_canary (run_id, region, written_at) VALUES (%s, %s, now()) "
                "ON CONFLICT (run_id) DO NOTHING",
                (run_id, region),
            )
            row = connection.execute("SELECT written_at FROM dr_canary WHERE run_id = %s", (run_id,)).fetchone()
        return row[0]

    def find(self, endpoint: DbEndpoint, run_id: str) -> datetime | None:
        with calls.waiting(), connect(endpoint) as connection:
            row = connection.execute("SELECT written_at FROM dr_canary WHERE run_id = %s", (run_id,)).fetchone()
        return row[0] if row else None

    def newest(self, endpoint: DbEndpoint) -> datetime | None:
        """The newest canary or heartbeat row this endpoint holds (a reader: what replicated to its region)."""
        with calls.waiting(), connect(endpoint) as connection:
            # Before the first heartbeat of a new deployment the table may not exist yet: that is "no heartbeat".
            beats = connection.execute("SELECT to_regclass('dr_heartbeat') IS NOT NULL").fetchone()[0]
            # GREATEST ignores NULLs: either kind of row counts.
            query = ("SELECT greatest((SELECT max(written_at) FROM dr_canary), (SELECT max(written_at) FROM "
                     "dr_heartbeat))" if beats else "SELECT max(written_at) FROM dr_canary")
            row = connection.execute(query).fetchone()
        return row[0] if row else None


def write_heartbeat_row(endpoint: DbEndpoint, region: str, at: datetime) -> None:
    """One heartbeat row on the writer (idempotent for the same `at`), and the rows past retention gone."""
    with calls.waiting(), connect(endpoint) as connection:
        connection.execute(HEARTBEAT_DDL)
        connection.execute("INSERT INTO dr_heartbeat (written_at, region) VALUES (%s, %s) "
                           "ON CONFLICT (written_at) DO NOTHING", (at, region))
        connection.execute("DELETE FROM dr_heartbeat WHERE written_at < %s", (at - HEARTBEAT_ROW_RETENTION,))


def db_endpoint(
    rds: Any, secrets: Any, cluster_id: str, secret_name: str, database: str, reader: bool = False
) -> DbEndpoint:
    """Where to reach a cluster (DescribeDBClusters) and how to log in (the secret of the same region)."""
    cluster = rds.describe_db_clusters(DBClusterIdentifier=cluster_id)["DBClusters"][0]
    secret = json.loads(secrets.get_secret_value(SecretId=secret_name)["SecretString"])
    host = cluster.get("ReaderEndpoint") if reader else cluster.get("Endpoint")
    return DbEndpoint(
        host=host or cluster["Endpoint"],
        port=int(cluster.get("Port") or secret.get("port", 5432)),
        database=database,
        username=secret["username"],
        password=secret["password"],
    )


def object_key(run_id: str) -> str:
    return f"{CANARY_PREFIX}{run_id}"


def probe_key(run_id: str) -> str:
    return f"{PROBE_PREFIX}{run_id}"


def heartbeat_key(at: datetime) -> str:
    return f"{HEARTBEAT_PREFIX}{at.astimezone(UTC).strftime(HEARTBEAT_KEY_FORMAT)}"


def heartbeat_time(key: str) -> datetime:
    """When the heartbeat object `key` was written, by its writer's clock (its name, not the replica's metadata)."""
    return datetime.strptime(key.removeprefix(HEARTBEAT_PREFIX), HEARTBEAT_KEY_FORMAT).replace(tzinfo=UTC)


def write_object(s3: Any, bucket: str, run_id: str, region: str, key: str | None = None) -> dict[str, Any]:
    """A small JSON object saying who wrote it where and when: a canary (`dr-canary/<run-id>`) unless `key` says
    otherwise (a probe, a heartbeat)."""
    key = key or object_key(run_id)
    written_at = datetime.now(UTC)
    body = json.dumps({"run_id": run_id, "region": region, "written_at": written_at.isoformat()}).encode()
    answer = s3.put_object(Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256",
                           ContentType="application/json")
    return {"key": key, "version_id": answer.get("VersionId"), "written_at": written_at.isoformat()}


def find_object(s3: Any, bucket: str, run_id: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket, Key=object_key(run_id))
    except ClientError as error:
        if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def newest_canary_object(s3: Any, bucket: str) -> datetime | None:
    """When the newest canary object in `bucket` was written (its LastModified, which a replica keeps)."""
    newest: datetime | None = None
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=CANARY_PREFIX):
        for item in page.get("Contents", ()):
            if newest is None or item["LastModified"] > newest:
                newest = item["LastModified"]
    return newest


def newest_heartbeat_object(s3: Any, bucket: str, now: datetime | None = None) -> datetime | None:
    """When the newest heartbeat object in `bucket` was written: the last key after the start of the smallest search
    window that has any (keys sort by time, and a listing returns them in order)."""
    now = now or datetime.now(UTC)
    for window in HEARTBEAT_SEARCH_WINDOWS:
        start_after = heartbeat_key(now - window) if window is not None else ""
        last = None
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=HEARTBEAT_PREFIX,
                                                                 StartAfter=start_after):
            contents = page.get("Contents")
            if contents:
                last = contents[-1]["Key"]
        if last is not None:
            return heartbeat_time(last)
    return None


def newest_object(s3: Any, bucket: str) -> datetime | None:
    """The newest canary or heartbeat object in `bucket` (never a probe)."""
    found = [when for when in (newest_canary_object(s3, bucket), newest_heartbeat_object(s3, bucket)) if when]
    return max(found, default=None)


def loss_bound(newest_row: datetime | None, newest_object: datetime | None) -> datetime | None:
    """Since when writes may be lost: the older of the newest row and newest object a region holds (the database and
    the archive lose data separately); None when either is missing (nothing bounds that side's loss)."""
    if newest_row is None or newest_object is None:
        return None
    return min(newest_row, newest_object)


def freshness(db: DbCanary, reader: DbEndpoint, s3: Any, bucket: str, now: datetime | None = None) -> dict[str, Any]:
    """How fresh one region's copy is: its newest canary/heartbeat row (from `reader`) and object (in `bucket`), since
    when writes may be lost, and how long ago that was (None: no bound, a side holds no canary nor heartbeat)."""
    return freshness_of(db.newest(reader), newest_object(s3, bucket), now or datetime.now(UTC))


def freshness_of(newest_row: datetime | None, newest_object: datetime | None, now: datetime) -> dict[str, Any]:
    """`freshness` of a newest row and object already read (`drctl status` reads them side by side)."""
    bound = loss_bound(newest_row, newest_object)
    return {"newest_row_at": newest_row.isoformat() if newest_row else None,
            "newest_object_at": newest_object.isoformat() if newest_object else None,
            "loss_bound_at": bound.isoformat() if bound else None,
            "expected_data_loss_seconds": None if bound is None else round(max((now - bound).total_seconds(), 0), 3)}
