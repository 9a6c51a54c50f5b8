"""Inventory mode: two S3 Inventory reports (manifest + gzipped CSV files, as S3 writes them) compared in a stream."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from urllib.parse import quote_plus

import pytest

from dr_runbooks.verify.inventory import InventoryError, compare_inventories

SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag"


def _write_report(side, rows, files=2, schema=SCHEMA) -> str:
    """An inventory of `side.bucket` with `rows` (key, version, is_latest, is_delete_marker, size) split over `files`
    gzipped CSV data files, written to the bucket `inventories`; returns the manifest's s3:// URI."""
    client, folder = side.client, f"inv/{side.bucket}/all/2026-11-22T01-00Z"
    if "inventories" not in [bucket["Name"] for bucket in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket="inventories", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    data_files = []
    for number in range(files):
        text = io.StringIO()
        writer = csv.writer(text, quoting=csv.QUOTE_ALL)
        for key, version, latest, marker, size in rows[number::files]:
            writer.writerow([side.bucket, quote_plus(key, safe="/"), version, str(latest).lower(),
                             str(marker).lower(), "" if size is None else size, "2026-11-21T10:00:00.000Z", "e"])
        data_key = f"inv/{side.bucket}/all/data/part-{number}.csv.gz"
        client.put_object(Bucket="inventories", Key=data_key, Body=gzip.compress(text.getvalue().encode()))
        data_files.append({"key": data_key, "size": 1, "MD5checksum": "0"})
    manifest = {"sourceBucket": side.bucket, "destinationBucket": "arn:aws:s3:::inventories", "version": "2016-11-30",
                "creationTimestamp": "1795395600000", "fileFormat": "CSV", "fileSchema": schema, "files": data_files}
    client.put_object(Bucket="inventories", Key=f"{folder}/manifest.json", Body=json.dumps(manifest).encode())
    return f"s3://inventories/{folder}/manifest.json"


def _objects(count, size=10):
    return [(f"charts/p{n % 3}/pt{n}/s{n}.pdf", f"v{n}", True, False, size) for n in range(count)]


def _compare(archives, source_rows, replica_rows, **options):
    return compare_inventories(
        archives.source, archives.replica, _write_report(archives.source, source_rows),
        _write_report(archives.replica, replica_rows), **options,
    )


def test_reports_in_sync_have_no_differences(archives):
    report = _compare(archives, _objects(100), _objects(100))
    assert report.in_sync and report.compared == 100 and report.mode == "inventory"


def test_keys_missing_from_the_replica_report_are_listed(archives, kinds):
    assert kinds(_compare(archives, _objects(10), _objects(8))) == {
        "charts/p2/pt8/s8.pdf": "missing-on-replica", "charts/p0/pt9/s9.pdf": "missing-on-replica",
    }


def test_noncurrent_versions_are_not_compared(archives):
    old = [("charts/p0/pt0/s0.pdf", "v-old", False, False, 99)]
    assert _compare(archives, _objects(3) + old, _objects(3)).in_sync


def test_a_delete_marker_not_replicated_is_found(archives, kinds):
    deleted = [("charts/p0/pt0/s0.pdf", "dm", True, True, None), ("charts/p0/pt0/s0.pdf", "v0", False, False, 10)]
    assert kinds(_compare(archives, deleted + _objects(3)[1:], _objects(3))) == {
        "charts/p0/pt0/s0.pdf": "delete-marker-not-replicated"
    }


def test_a_size_difference_and_an_extra_key_are_found(archives, kinds):
    replica = _objects(3, size=11)[:1] + _objects(3)[1:] + [("charts/p9/x.pdf", "vx", True, False, 1)]
    assert kinds(_compare(archives, _objects(3), replica)) == {
        "charts/p0/pt0/s0.pdf": "size-mismatch", "charts/p9/x.pdf": "extra-on-replica",
    }


def test_url_encoded_keys_are_decoded(archives, kinds):
    rows = [("charts/p0/Dr Müller+Co/scan 1.pdf", "v", True, False, 5)]
    report = _compare(archives, rows, [])
    assert kinds(report) == {"charts/p0/Dr Müller+Co/scan 1.pdf": "missing-on-replica"}


def test_a_prefix_limits_the_comparison(archives):
    report = _compare(archives, _objects(9), _objects(9)[:3], prefix="charts/p1/")
    assert report.compared == 3
    assert {d.key for d in report.differences} == {"charts/p1/pt4/s4.pdf", "charts/p1/pt7/s7.pdf"}


def test_a_manifest_of_another_bucket_is_refused(archives):
    with pytest.raises(InventoryError, match="is an inventory of charts-primary, not of charts-replica"):
        report = _write_report(archives.source, _objects(1))
        compare_inventories(archives.source, archives.replica, report, report)


def test_a_manifest_that_is_not_an_s3_uri_is_refused(archives):
    with pytest.raises(InventoryError, match=re.escape("s3://bucket/.../manifest.json")):
        compare_inventories(archives.source, archives.replica, "/tmp/manifest.json", "s3://x/manifest.json")


def test_a_missing_manifest_is_a_one_line_error(archives):
    archives.source.client.create_bucket(Bucket="inventories",
                                         CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    with pytest.raises(InventoryError, match=r"cannot read it \(NoSuchKey\)"):
        compare_inventories(archives.source, archives.replica, "s3://inventories/a/manifest.json",
                            "s3://inventories/b/manifest.json")


def test_a_report_without_a_size_column_is_refused(archives):
    uri = _write_report(archives.source, [], schema="Bucket, Key")
    with pytest.raises(InventoryError, match="no Size column"):
        compare_inventories(archives.source, archives.replica, uri, uri)
