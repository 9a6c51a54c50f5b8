"""Comparing two S3 Inventory reports: the check for archives of many millions of files.

Listing 100 million keys costs 200,000 requests and hours; S3 Inventory writes the same listing daily for a fraction
of a cent per million objects. A report is a `manifest.json` naming gzipped CSV data files (no header; columns in the
order of its `fileSchema`; keys URL-encoded). Reports are streamed: each data file is read through gzip and csv row by
row into an on-disk SQLite table (bounded memory, whatever the archive's size), and one join lists the keys whose
current state differs, judged by the same rules as the list mode. Checksums are not in inventory reports: sizes,
presence and delete markers are compared; `--deep` on a prefix is the follow-up for suspicious keys.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urlparse

from botocore.exceptions import ClientError

from dr_runbooks.verify.compare import Side, judge
from dr_runbooks.verify.counting import RequestCounter
from dr_runbooks.verify.model import ObjectState, ReplicationReport

#: Rows per executemany batch while loading a report.
BATCH = 10_000

_DIFFERENCES = """
SELECT s.key, s.delete_marker, s.size, s.version_id, r.key, r.delete_marker, r.size, r.version_id
FROM source s LEFT JOIN replica r ON r.key = s.key
WHERE r.key IS NULL OR r.delete_marker != s.delete_marker OR r.size IS NOT s.size
UNION ALL
SELECT NULL, NULL, NULL, NULL, r.key, r.delete_marker, r.size, r.version_id
FROM replica r LEFT JOIN source s ON s.key = r.key
WHERE s.key IS NULL
"""


class InventoryError(ValueError):
    """An inventory report that cannot be read or is not of the expected bucket; one line."""


def _split(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc or not parsed.path.endswith("manifest.json"):
        raise InventoryError(f"{uri}: an inventory manifest is given as s3://bucket/.../manifest.json")
    return parsed.netloc, parsed.path.lstrip("/")


def read_manifest(client: Any, uri: str) -> dict[str, Any]:
    bucket, key = _split(uri)
    try:
        manifest = json.load(client.get_object(Bucket=bucket, Key=key)["Body"])
    except ClientError as error:
        raise InventoryError(f"{uri}: cannot read it ({error.response['Error']['Code']})") from None
    except json.JSONDecodeError as error:
        raise InventoryError(f"{uri}: not JSON ({error})") from None
    if manifest.get("fileFormat") != "CSV":
        raise InventoryError(f"{uri}: fileFormat {manifest.get('fileFormat')!r} (only CSV reports are read)")
    missing = {"Key", "Size"} - set(_schema(manifest))
    if missing or "files" not in manifest:
        raise InventoryError(f"{uri}: not an inventory manifest (no files, or no {', '.join(sorted(missing))} column)")
    return manifest


def _schema(manifest: dict[str, Any]) -> list[str]:
    return [column.strip() for column in str(manifest.get("fileSchema", "")).split(",")]


def current_states(client: Any, manifest: dict[str, Any], prefix: str = "") -> Iterator[ObjectState]:
    """The current state of each key in the report's data files, streamed (noncurrent versions are skipped)."""
    columns = {name: index for index, name in enumerate(_schema(manifest))}
    bucket = manifest["destinationBucket"].removeprefix("arn:aws:s3:::")

    def field(row: list[str], name: str) -> str | None:
        return row[columns[name]] if name in columns and columns[name] < len(row) else None

    for data_file in manifest["files"]:
        body = client.get_object(Bucket=bucket, Key=data_file["key"])["Body"]
        with gzip.GzipFile(fileobj=body) as unzipped:
            for row in csv.reader(io.TextIOWrapper(unzipped, encoding="utf-8", newline="")):
                if field(row, "IsLatest") == "false":
                    continue
                key = unquote_plus(row[columns["Key"]])
                if not key.startswith(prefix):
                    continue
                size = field(row, "Size")
                yield ObjectState.model_construct(
                    key=key,
                    delete_marker=field(row, "IsDeleteMarker") == "true",
                    size=int(size) if size else None,
                    version_id=field(row, "VersionId") or None,
                )


def _load(database: sqlite3.Connection, table: str, states: Iterator[ObjectState]) -> None:
    database.execute(
        f"CREATE TABLE {table} (key TEXT PRIMARY KEY, delete_marker INTEGER, size INTEGER, version_id TEXT)"
        " WITHOUT ROWID"
    )
    batch: list[tuple[str, int, int | None, str | None]] = []
    for state in states:
        batch.append((state.key, int(state.delete_marker), state.size, state.version_id))
        if len(batch) >= BATCH:
            database.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?, ?)", batch)
            batch = []
    database.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?, ?)", batch)


def _state(key: str | None, delete_marker: int | None, size: int | None, version: str | None) -> ObjectState | None:
    if key is None:
        return None
    return ObjectState(key=key, delete_marker=bool(delete_marker), size=size, version_id=version)


def compare_inventories(
    source: Side, replica: Side, source_manifest: str, replica_manifest: str, prefix: str = "",
    counter: RequestCounter | None = None,
) -> ReplicationReport:
    """Compare the source's and the replica's inventory reports (each read with its side's client)."""
    started = time.monotonic()
    manifests = {"source": read_manifest(source.client, source_manifest),
                 "replica": read_manifest(replica.client, replica_manifest)}
    for name, side in (("source", source), ("replica", replica)):
        if manifests[name]["sourceBucket"] != side.bucket:
            raise InventoryError(
                f"the {name} manifest is an inventory of {manifests[name]['sourceBucket']}, not of {side.bucket}"
            )
    with tempfile.TemporaryDirectory(prefix="ehr-dr-inventory-") as folder:
        database = sqlite3.connect(Path(folder) / "inventory.sqlite")
        try:
            database.execute("PRAGMA journal_mode = OFF")
            database.execute("PRAGMA synchronous = OFF")
            _load(database, "source", current_states(source.client, manifests["source"], prefix))
            _load(database, "replica", current_states(replica.client, manifests["replica"], prefix))
            compared = database.execute(
                "SELECT (SELECT count(*) FROM source) + (SELECT count(*) FROM replica r"
                " WHERE NOT EXISTS (SELECT 1 FROM source s WHERE s.key = r.key))"
            ).fetchone()[0]
            differences = [
                difference
                for row in database.execute(_DIFFERENCES)
                if (difference := judge(_state(*row[:4]), _state(*row[4:]))) is not None
            ]
        finally:
            database.close()
    return ReplicationReport(
        source=f"s3://{source.bucket}", replica=f"s3://{replica.bucket}", mode="inventory", listing="inventory",
        deep=False, compared=compared, differences=sorted(differences, key=lambda difference: difference.key),
        requests=counter() if counter else 0, seconds=time.monotonic() - started,
    )
