"""`drctl verify replication` as a user runs it: exit codes, text and JSON output, --repair, topology from SSM."""

from __future__ import annotations

import json

import boto3
from click.testing import CliRunner

from dr_runbooks.cli import cli
from dr_runbooks.config import DeploymentConfig
from dr_runbooks.topology import build_topology, parameter_name

AD_HOC = ["--source-bucket", "charts-primary", "--replica-bucket", "charts-replica",
          "--source-region", "us-west-2", "--replica-region", "us-west-1"]


def _verify(*args):
    return CliRunner().invoke(cli, ["verify", "replication", *args])


def test_archives_in_sync_exit_0(archives):
    archives.put_many(5)
    result = _verify(*AD_HOC)
    assert result.exit_code == 0, result.output
    assert "In sync" in result.output


def test_missing_versions_are_listed_and_exit_1(archives):
    archives.put_many(5)
    archives.put("charts/p001/late.pdf", replicate=False)
    result = _verify(*AD_HOC)
    assert result.exit_code == 1
    assert "missing-on-replica               charts/p001/late.pdf" in result.output


def test_json_output_lists_the_differences(archives):
    archives.put("charts/p001/late.pdf", replicate=False)
    document = json.loads(_verify(*AD_HOC, "--output", "json").output)
    assert [(d["kind"], d["key"]) for d in document["differences"]] == [("missing-on-replica", "charts/p001/late.pdf")]
    assert document["requests"] > 0


def test_repair_redrives_the_missing_versions(archives):
    archives.put("charts/p001/late.pdf", replicate=False)
    document = json.loads(_verify(*AD_HOC, "--repair", "--output", "json").output)
    assert [repair["key"] for repair in document["repairs"]] == ["charts/p001/late.pdf"]
    versions = archives.source.client.list_object_versions(Bucket="charts-primary")["Versions"]
    assert len(versions) == 2


def test_deep_finds_a_changed_checksum(archives):
    archives.put("charts/p000/a.pdf", b"abc")
    archives.replica.client.put_object(Bucket="charts-replica", Key="charts/p000/a.pdf", Body=b"abd",
                                       ChecksumAlgorithm="SHA256")
    assert _verify(*AD_HOC).exit_code == 0
    result = _verify(*AD_HOC, "--deep")
    assert result.exit_code == 1 and "checksum-mismatch" in result.output


def test_the_environment_topology_names_the_buckets(archives):
    topology = build_topology(DeploymentConfig(env_name="demo", account="123456789012"))
    for region in topology.regions:
        boto3.client("ssm", region_name=region).put_parameter(
            Name=parameter_name("demo"), Value=topology.to_json(), Type="String")
        bucket = topology.in_region(region).chart_bucket
        client = boto3.client("s3", region_name=region)
        client.create_bucket(Bucket=bucket, **({"CreateBucketConfiguration": {"LocationConstraint": region}}
                                               if region != "us-east-1" else {}))
    primary = topology.in_region("us-east-1").chart_bucket
    boto3.client("s3", region_name="us-east-1").put_object(Bucket=primary, Key="charts/p1/a.pdf", Body=b"x")
    document = json.loads(_verify("--env", "demo", "--output", "json").output)
    assert document["source"] == f"s3://{primary}"
    assert document["replica"] == f"s3://{topology.in_region('us-west-1').chart_bucket}"
    assert [d["key"] for d in document["differences"]] == ["charts/p1/a.pdf"]


def test_an_environment_without_topology_is_refused(archives):
    result = _verify("--env", "nowhere")
    assert result.exit_code == 2
    assert "no topology for environment 'nowhere'" in result.output


def test_ad_hoc_use_without_both_buckets_is_refused(archives):
    result = _verify("--source-bucket", "charts-primary")
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "needs --source-bucket, --replica-bucket" in result.output


def test_deep_is_refused_in_inventory_mode(archives):
    result = _verify(*AD_HOC, "--deep", "--inventory", "s3://a/manifest.json", "s3://b/manifest.json")
    assert result.exit_code == 2 and "inventory mode compares the reports only" in result.output
