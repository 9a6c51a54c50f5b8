"""Canaries: a row in `dr_canary` and an object `dr-canary/<run-id>`, written before an event and looked for after.

RPO is measured from the data, not inferred from a metric: after a switchover both canaries must be in the new
primary (RPO 0); after a failover the newest canary the new primary holds tells how much was lost. The database side
sits behind `DbCanary`, so the runbooks need only an endpoint and credentials (from DescribeDBClusters and Secrets
Manager) and the SQL lives in one place.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel

from dr_runbooks.engine import calls

CANARY_PREFIX = "dr-canary/"


class DbEndpoint(BaseModel):
    host: str
    port: int
    database: str
    username: str
    password: str


class DbCanary(Protocol):
    def write(self, endpoint: DbEndpoint, run_id: str, region: str) -> datetime: ...

    def find(self, endpoint: DbEndpoint, run_id: str) -> datetime | None: ...

    def newest(self, endpoint: DbEndpoint) -> datetime | None: ...


class PostgresCanary:
    """`dr_canary(run_id text primary key, region text, written_at timestamptz)` in the records database."""

    def _connect(self, endpoint: DbEndpoint) -> Any:
        import psycopg  # the sandbox extra; on AWS the Lambda layer carries it

        return psycopg.connect(
            host=endpoint.host, port=endpoint.port, dbname=endpoint.database, user=endpoint.username,
            password=endpoint.password, connect_timeout=5, autocommit=True,
        )

    def write(self, endpoint: DbEndpoint, run_id: str, region: str) -> datetime:
        with calls.waiting(), self._connect(endpoint) as connection:
            connection.execute(
                "INSERT INTO dr_canary (run_id, region, written_at) VALUES (%s, %s, now()) "
                "ON CONFLICT (run_id) DO NOTHING",
                (run_id, region),
            )
            row = connection.execute("SELECT written_at FROM dr_canary WHERE run_id = %s", (run_id,)).fetchone()
        return row[0]

    def find(self, endpoint: DbEndpoint, run_id: str) -> datetime | None:
        with calls.waiting(), self._connect(endpoint) as connection:
            row = connection.execute("SELECT written_at FROM dr_canary WHERE run_id = %s", (run_id,)).fetchone()
        return row[0] if row else None

    def newest(self, endpoint: DbEndpoint) -> datetime | None:
        with calls.waiting(), self._connect(endpoint) as connection:
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
