"""`drctl verify replication` against the sandbox, whose S3 replication emulation can be paused and misconfigured."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from dr_runbooks.cli import cli

EAST, WEST = "us-east-1", "us-west-1"


@pytest.fixture(scope="module")
def charts(sandbox):
    """The two chart buckets, with a few replicated charts in them."""
    topology = sandbox.topology
    source, replica = topology.regions[EAST].chart_bucket, topology.regions[WEST].chart_bucket
    s3 = sandbox.client("s3", EAST)
    for number in range(12):
        s3.put_object(Bucket=source, Key=f"charts/p{number % 3}/pt{number}/s{number}.pdf",
                      Body=f"%PDF {number:02d}".encode(), ChecksumAlgorithm="SHA256")
    sandbox.action("replication-drain", timeout=10)
    return source, replica


def _verify(*args):
    result = CliRunner().invoke(cli, ["verify", "replication", "--output", "json", *args])
    return result.exit_code, json.loads(result.stdout) if result.stdout.startswith("{") else result.output


def _missing(document):
    return sorted(d["key"] for d in document["differences"] if d["kind"] == "missing-on-replica")


def test_a_healthy_sandbox_is_in_sync(sandbox_env, charts):
    code, document = _verify("--deep")
    assert code == 0, document
    assert document["source"] == f"s3://{charts[0]}" and document["compared"] >= 12


def test_paused_replication_lists_the_missing_versions_and_repair_redrives_them(sandbox, sandbox_env, sandbox_faults,
                                                                                 charts):
    sandbox_faults.pause_replication()
    s3 = sandbox.client("s3", EAST)
    for key in ("charts/p1/pt100/late-a.pdf", "charts/p2/pt101/late-b.pdf"):
        s3.put_object(Bucket=charts[0], Key=key, Body=b"late", ChecksumAlgorithm="SHA256")
    code, document = _verify()
    assert code == 1
    assert _missing(document) == ["charts/p1/pt100/late-a.pdf", "charts/p2/pt101/late-b.pdf"]
    code, document = _verify("--repair")
    assert [repair["key"] for repair in document["repairs"] if not repair["error"]] == _missing(document)
    sandbox_faults.resume_replication()
    sandbox.action("replication-drain", timeout=10)
    assert _verify("--deep")[0] == 0


def test_versions_written_while_the_rule_was_disabled_stay_missing_until_repaired(sandbox, sandbox_env, charts):
    s3 = sandbox.client("s3", EAST)
    configuration = s3.get_bucket_replication(Bucket=charts[0])["ReplicationConfiguration"]
    disabled = {**configuration, "Rules": [{**rule, "Status": "Disabled"} for rule in configuration["Rules"]]}
    s3.put_bucket_replication(Bucket=charts[0], ReplicationConfiguration=disabled)
    try:
        s3.put_object(Bucket=charts[0], Key="charts/p0/pt200/unreplicated.pdf", Body=b"x", ChecksumAlgorithm="SHA256")
    finally:
        s3.put_bucket_replication(Bucket=charts[0], ReplicationConfiguration=configuration)
    sandbox.action("replication-drain", timeout=10)
    code, document = _verify()
    assert code == 1 and _missing(document) == ["charts/p0/pt200/unreplicated.pdf"]
    _verify("--repair")
    sandbox.action("replication-drain", timeout=10)
    assert _verify("--deep")[0] == 0


def test_a_replica_changed_behind_replication_is_found_with_deep(sandbox, sandbox_env, sandbox_faults, charts):
    sandbox_faults.pause_replication()  # the replica bucket replicates back: hold the tampered write there
    # Same size as the original "%PDF 00": only the checksum tells them apart.
    sandbox.client("s3", WEST).put_object(Bucket=charts[1], Key="charts/p0/pt0/s0.pdf", Body=b"%PDF XX",
                                          ChecksumAlgorithm="SHA256")
    assert _verify()[0] == 0
    code, document = _verify("--deep")
    assert code == 1
    assert [(d["kind"], d["key"]) for d in document["differences"]] == [("checksum-mismatch", "charts/p0/pt0/s0.pdf")]


@pytest.mark.parametrize("hang", [False, True], ids=["dark", "black-holed"])
def test_a_region_that_does_not_answer_is_one_line_and_exit_2_within_seconds(sandbox_env, sandbox_faults, charts,
                                                                             hang):
    sandbox_faults.region_down(EAST, hang=hang)
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["verify", "replication"])
    seconds = time.monotonic() - started
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"refused: {EAST} does not answer") and len(result.output.splitlines()) == 1
    # The probe client's budget: 2 attempts of a 2 s connect and a 3 s read, plus botocore's backoff between them.
    assert seconds < 15, seconds
