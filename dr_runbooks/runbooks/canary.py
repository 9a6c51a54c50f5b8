"""Canaries: a row in `dr_canary` and an object `dr-canary/<run-id>`, written before an event and looked for after.

RPO is measured from the data, not inferred from a metric: after a switchover both canaries must be in the new
primary (RPO 0); after a failover the newest canary the new primary holds tells how much was lost. The database side
sits behind `DbCanary`, so the runbooks need only an endpoint and credentials (from DescribeDBClusters and Secrets
Manager) and the SQL lives in one place.

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
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol

import pg8000.dbapi
from pydantic import BaseModel

from dr_runbooks.engine import calls

CANARY_PREFIX = "dr-canary/"
#: libpq's name for the file of CA certificates that vouch for the server: on AWS, the RDS CA bundle.
CA_BUNDLE_VARIABLE = "PGSSLROOTCERT"
#: How long the database may take to accept the TCP connection: an endpoint behind a closed security group fails the
#: step in seconds instead of at Lambda's timeout.
CONNECT_TIMEOUT_S = 5
#: How long one read may wait (TLS handshake, login, a query's answer): a fingerprint of a large table takes minutes,
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
    """`dr_canary(run_id text primary key, region text, written_at timestamptz)` in the records database."""

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
        with calls.waiting(), connect(endpoint) as connection:
            row = connection.execute("SELECT max(written_at) FROM dr_canary").fetchone()
        return row[0] if row else None


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


def write_object(s3: Any, bucket: str, run_id: str, region: str) -> dict[str, Any]:
    written_at = datetime.now(UTC)
    body = json.dumps({"run_id": run_id, "region": region, "written_at": written_at.isoformat()}).encode()
    answer = s3.put_object(Bucket=bucket, Key=object_key(run_id), Body=body, ChecksumAlgorithm="SHA256",
                           ContentType="application/json")
    return {"key": object_key(run_id), "version_id": answer.get("VersionId"), "written_at": written_at.isoformat()}


def find_object(s3: Any, bucket: str, run_id: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket, Key=object_key(run_id))
    except ClientError as error:
        if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def newest_object(s3: Any, bucket: str) -> datetime | None:
    """When the newest canary object in `bucket` was written (its LastModified)."""
    newest: datetime | None = None
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=CANARY_PREFIX):
        for item in page.get("Contents", ()):
            if newest is None or item["LastModified"] > newest:
                newest = item["LastModified"]
    return newest
