"""`drctl verify charts` on the sandbox: both regions' chart archives against the SHA-256 of each chart's scan row.

The module's sandbox is seeded once (60 charts, replicated); a test that breaks a chart puts its original bytes back
afterwards, so every test starts from a healthy archive.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from dr_runbooks.cli import cli
from dr_runbooks.runbooks import canary
from dr_runbooks.verify.charts import sampled_rows, stored_sha256

EAST, WEST = "us-east-1", "us-west-1"
PATIENTS, FILES_PER_PATIENT = 20, 3
CHARTS = PATIENTS * FILES_PER_PATIENT


@pytest.fixture(scope="module")
def seeded(sandbox):
    sandbox.seed(patients=PATIENTS, files_per_patient=FILES_PER_PATIENT)
    sandbox.action("replication-drain", timeout=30)
    return sandbox


def _buckets(sandbox) -> dict[str, str]:
    return {region: sandbox.topology.regions[region].chart_bucket for region in (EAST, WEST)}


def _writer(sandbox) -> canary.DbEndpoint:
    topology = sandbox.topology
    return canary.db_endpoint(sandbox.client("rds", EAST), sandbox.client("secretsmanager", EAST),
                              topology.regions[EAST].db_cluster_id, topology.db_secret_name, topology.database_name)


def _a_chart(sandbox) -> str:
    with canary.connect(_writer(sandbox)) as database:
        return database.execute("SELECT object_key FROM scans ORDER BY object_key LIMIT 1").fetchone()[0]


@pytest.fixture
def chart(seeded, sandbox_faults) -> Iterator[str]:
    """A seeded chart's key; after the test its original bytes are current again in both regions."""
    key = _a_chart(seeded)
    s3 = seeded.client("s3", EAST)
    original = s3.get_object(Bucket=_buckets(seeded)[EAST], Key=key)["Body"].read()
    yield key
    seeded.faults.resume_replication()
    s3.put_object(Bucket=_buckets(seeded)[EAST], Key=key, Body=original, ChecksumAlgorithm="SHA256")
    seeded.action("replication-drain", timeout=30)


def _charts(evidence_dir: Path, *args: str) -> tuple[int, dict | str]:
    result = CliRunner().invoke(cli, ["verify", "charts", "--output", "json", "--evidence-dir", str(evidence_dir),
                                      *args])
    return result.exit_code, json.loads(result.stdout) if result.stdout.startswith("{") else result.output


def _findings(document: dict) -> list[tuple[str, str, str]]:
    return [(f["kind"], f["region"], f["key"]) for f in document["findings"]]


def _corrupt_in_dr(sandbox, key: str) -> None:
    """A bad write to the DR copy: other bytes, stored with their own (self-consistent) SHA-256."""
    sandbox.client("s3", WEST).put_object(Bucket=_buckets(sandbox)[WEST], Key=key, Body=b"%PDF-1.7\nnot this chart",
                                          ChecksumAlgorithm="SHA256")


def test_a_healthy_archive_passes_in_both_regions(seeded, sandbox_env, tmp_path):
    code, document = _charts(tmp_path, "--all")
    assert code == 0, document
    assert document["passed"] and document["findings"] == []
    assert {r["region"]: r["checked"] for r in document["regions"]} == {EAST: CHARTS, WEST: CHARTS}
    assert document["sampled"] is False and document["scan_rows"] == CHARTS


def test_a_dr_write_replicated_back_is_corrupted_in_both_regions_although_replication_is_in_sync(
        seeded, sandbox_env, chart, tmp_path):
    _corrupt_in_dr(seeded, chart)
    seeded.action("replication-drain", timeout=30)
    replication = CliRunner().invoke(cli, ["verify", "replication", "--deep"])
    assert replication.exit_code == 0, replication.output
    code, document = _charts(tmp_path, "--all")
    assert code == 1
    assert _findings(document) == [("corrupted", EAST, chart), ("corrupted", WEST, chart)]


def test_a_dr_write_not_replicated_is_corrupted_in_the_dr_region_only(seeded, sandbox_env, sandbox_faults, chart,
                                                                      tmp_path):
    sandbox_faults.pause_replication()
    _corrupt_in_dr(seeded, chart)
    code, document = _charts(tmp_path, "--all")
    assert code == 1 and _findings(document) == [("corrupted", WEST, chart)]


def test_reading_the_bytes_finds_the_corruption_too(seeded, sandbox_env, chart, tmp_path):
    _corrupt_in_dr(seeded, chart)
    seeded.action("replication-drain", timeout=30)
    code, document = _charts(tmp_path, "--all", "--read-bytes")
    assert code == 1 and document["method"] == "bytes"
    assert _findings(document) == [("corrupted", EAST, chart), ("corrupted", WEST, chart)]
    assert {r["region"]: r["read"] for r in document["regions"]} == {EAST: CHARTS, WEST: CHARTS}


def test_a_deleted_chart_is_reported_deleted_where_its_delete_marker_is_current(seeded, sandbox_env, chart, tmp_path):
    seeded.client("s3", EAST).delete_object(Bucket=_buckets(seeded)[EAST], Key=chart)
    seeded.action("replication-drain", timeout=30)
    code, document = _charts(tmp_path, "--all")
    assert code == 1
    assert ("deleted", EAST, chart) in _findings(document)
    assert {kind for kind, _, key in _findings(document)} == {"deleted"}


@pytest.fixture
def unwritten_scan(seeded) -> Iterator[callable]:
    """Adds scan rows (on the writer) naming charts nobody stored; removes them afterwards."""
    keys: list[str] = []

    def add(key: str, scanned_at: datetime) -> None:
        with canary.connect(_writer(seeded)) as database:
            patient = database.execute("SELECT patient_id FROM patients ORDER BY patient_id LIMIT 1").fetchone()[0]
            database.execute("INSERT INTO scans (scan_id, patient_id, object_key, sha256, content_type, size_bytes, "
                             "scanned_at) VALUES (%s, %s, %s, %s, 'application/pdf', 10, %s)",
                             (key.rsplit("/", 1)[-1], patient, key, "0" * 64, scanned_at))
        keys.append(key)

    yield add
    with canary.connect(_writer(seeded)) as database:
        for key in keys:
            database.execute("DELETE FROM scans WHERE object_key = %s", (key,))


def test_a_chart_never_stored_is_missing_once_replication_had_its_time(seeded, sandbox_env, unwritten_scan,
                                                                       tmp_path):
    key = "charts/practice-01/pt-000001/scan-lost.pdf"
    unwritten_scan(key, datetime.now(UTC) - timedelta(hours=1))
    code, document = _charts(tmp_path, "--all", "--db-region", EAST)
    assert code == 1
    assert _findings(document) == [("missing", EAST, key), ("missing", WEST, key)]


def test_a_chart_scanned_within_the_replication_window_is_pending_not_failing(seeded, sandbox_env, unwritten_scan,
                                                                             tmp_path):
    key = "charts/practice-01/pt-000001/scan-just-now.pdf"
    unwritten_scan(key, datetime.now(UTC))
    code, document = _charts(tmp_path, "--all", "--db-region", EAST)
    assert code == 0, document
    assert _findings(document) == [("pending", EAST, key), ("pending", WEST, key)]


def test_a_sample_checks_that_many_rows_chosen_by_the_run_id(seeded, sandbox_env, tmp_path):
    code, document = _charts(tmp_path, "--sample", "10")
    assert code == 0, document
    assert document["sampled"] and document["sample_seed"] == document["run_id"]
    assert [r["checked"] for r in document["regions"]] == [10, 10] and document["scan_rows"] == CHARTS


def test_the_same_seed_samples_the_same_rows_and_another_seed_others(seeded):
    with canary.connect(_writer(seeded)) as database:
        def sample(seed: str) -> list[str]:
            return [row.key for batch in sampled_rows(database, seed, 10) for row in batch]

        assert sample("run-a") == sample("run-a")
        assert sample("run-a") != sample("run-b")


def test_a_sample_larger_than_the_table_checks_every_row(seeded, sandbox_env, tmp_path):
    code, document = _charts(tmp_path, "--sample", str(CHARTS * 10), "--sample-seed", "fixed")
    assert code == 0 and document["sample_seed"] == "fixed"
    assert [r["checked"] for r in document["regions"]] == [CHARTS, CHARTS]


def test_the_evidence_counts_the_findings_and_names_no_chart(seeded, sandbox_env, chart, tmp_path):
    _corrupt_in_dr(seeded, chart)
    seeded.action("replication-drain", timeout=30)
    code, document = _charts(tmp_path, "--all")
    assert code == 1
    [path] = (tmp_path / seeded.config.env_name).glob("*.json")
    sealed = path.read_text()
    record = json.loads(sealed)
    assert record["kind"] == "verify-charts" and record["outcome"] == "failed"
    assert {v["what"].split("(")[1].split(")")[0]: v["mismatched"] for v in record["verifications"]} == {
        EAST: 1, WEST: 1}
    assert chart not in sealed and chart.split("/")[2] not in sealed  # neither the key nor the patient id
    listed = "\n".join(sorted(f"{f['region']}\t{f['kind']}\t{f['key']}" for f in document["findings"]))
    digest = hashlib.sha256(listed.encode()).hexdigest()
    assert f"findings digest sha256:{digest}" in record["verifications"][0]["detail"]
    assert record["run_id"] == document["run_id"]


def test_all_and_a_sample_exclude_each_other(sandbox_env, tmp_path):
    result = CliRunner().invoke(cli, ["verify", "charts", "--all", "--sample", "5",
                                      "--evidence-dir", str(tmp_path)])
    assert result.exit_code == 2 and result.output.startswith("refused: --all checks every scan row")
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


@pytest.mark.parametrize("hang", [False, True], ids=["dark", "black-holed"])
def test_a_region_that_does_not_answer_is_one_line_and_exit_2_within_seconds(seeded, sandbox_env, sandbox_faults,
                                                                             tmp_path, hang):
    sandbox_faults.region_down(WEST, hang=hang)
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["verify", "charts", "--evidence-dir", str(tmp_path)])
    seconds = time.monotonic() - started
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"refused: {WEST} does not answer") and len(result.output.splitlines()) == 1
    assert "verify charts reads both archives" in result.output
    assert seconds < 15, seconds


def test_a_chart_stored_without_a_sha256_checksum_is_read_in_full(seeded, sandbox_env, chart, tmp_path):
    s3 = seeded.client("s3", EAST)
    body = s3.get_object(Bucket=_buckets(seeded)[EAST], Key=chart)["Body"].read()
    s3.put_object(Bucket=_buckets(seeded)[EAST], Key=chart, Body=body)  # the SDK's default checksum: not SHA-256
    seeded.action("replication-drain", timeout=30)
    code, document = _charts(tmp_path, "--all")
    assert code == 0, document
    assert {r["region"]: r["read"] for r in document["regions"]} == {EAST: 1, WEST: 1}


@pytest.mark.parametrize("head", [
    {"ChecksumSHA256": "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=-3", "ChecksumType": "COMPOSITE"},
    {"ChecksumSHA256": "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=-3"},
    {"ChecksumCRC64NVME": "AAAAAAAAAAA="},
], ids=["composite", "part-count-suffix", "no-sha256"])
def test_a_checksum_that_is_not_a_full_object_sha256_is_not_used(head):
    assert stored_sha256(head) is None


def test_a_full_object_sha256_is_used_as_hex():
    assert stored_sha256({"ChecksumSHA256": base64.b64encode(hashlib.sha256(b"x").digest()).decode(),
                          "ChecksumType": "FULL_OBJECT"}) == hashlib.sha256(b"x").hexdigest()


def test_the_text_output_tells_the_verdict_and_the_report_renders_the_record(seeded, sandbox_env, tmp_path):
    result = CliRunner().invoke(cli, ["verify", "charts", "--sample", "5", "--evidence-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "All charts match their scan rows." in result.output
    report = CliRunner().invoke(cli, ["report", "--evidence-dir", str(tmp_path), "--out", str(tmp_path / "reports")])
    assert report.exit_code == 0, report.output
    [markdown] = (tmp_path / "reports").glob("*.md")
    assert "verify-charts" in markdown.read_text()


def test_a_db_region_outside_the_estate_is_refused(seeded, sandbox_env, tmp_path):
    result = CliRunner().invoke(cli, ["verify", "charts", "--db-region", "eu-west-1", "--evidence-dir", str(tmp_path)])
    assert result.exit_code == 2 and len(result.output.splitlines()) == 1
    assert result.output.startswith("refused: --db-region eu-west-1: the records database")
