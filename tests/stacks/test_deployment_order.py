"""The stacks of both regions: named for what they hold, and ordered so a first `cdk deploy --all` can succeed."""

from __future__ import annotations

import json
import re

from stack_assembly import Estate

REGIONAL = ("keys", "archive", "runbooks", "monitoring", "database", "backup", "audit", "traffic-gate", "orchestration")


def _dependencies(estate: Estate) -> dict[str, set[str]]:
    artifacts = json.loads((estate.outdir / "manifest.json").read_text())["artifacts"]
    return {name: set(artifact.get("dependencies", ())) for name, artifact in artifacts.items()
            if artifact["type"] == "aws:cloudformation:stack"}


def test_each_region_has_one_stack_per_concern(estate: Estate) -> None:
    expected = {estate.stack_name(concern, region) for concern in REGIONAL for region in estate.regions}
    primary = estate.config.primary_region
    expected |= {estate.stack_name("access", primary), estate.stack_name("traffic", primary),
                 estate.stack_name("archive-return", estate.config.dr_region)}
    assert set(estate.templates) == expected


def test_dr_chart_bucket_exists_before_the_primary_replicates_to_it(estate: Estate) -> None:
    primary, dr = estate.regions
    assert estate.stack_name("archive", dr) in _dependencies(estate)[estate.stack_name("archive", primary)]


def test_dr_way_back_rule_is_put_after_both_chart_buckets_exist(estate: Estate) -> None:
    dependencies = _dependencies(estate)[estate.stack_name("archive-return", estate.config.dr_region)]
    assert {estate.stack_name("archive", region) for region in estate.regions} <= dependencies


def _deployed_before(estate: Estate, stack: str) -> set[str]:
    """Every stack `cdk deploy --all` finishes before `stack` starts (transitive dependencies)."""
    dependencies, found, todo = _dependencies(estate), set(), [stack]
    while todo:
        for dependency in dependencies.get(todo.pop(), ()):
            if dependency not in found:
                found.add(dependency)
                todo.append(dependency)
    return found


def _replication_destinations(template: dict) -> list[str]:
    """Destination bucket ARNs of the rules a template sets: bucket properties and PutBucketReplication calls."""
    found = []
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::S3::Bucket":
            found += [rule["Destination"]["Bucket"]
                      for rule in properties.get("ReplicationConfiguration", {}).get("Rules", [])]
        elif resource["Type"] == "Custom::AWS":
            create = json.dumps(properties["Create"])
            found += re.findall(r'\\"Destination\\":\{\\"Bucket\\":\\"(arn:aws:s3:::[^\\]+)', create)
    return found


def test_every_replication_destination_exists_before_the_rule_that_names_it(estate: Estate) -> None:
    """A one-pass `cdk deploy --all`: S3 refuses a rule whose destination bucket does not exist yet."""
    created_in = {f"arn:aws:s3:::{resource['Properties']['BucketName']}": name
                  for name, template in estate.templates.items() for resource in template["Resources"].values()
                  if resource["Type"] == "AWS::S3::Bucket" and "BucketName" in resource["Properties"]}
    rules = [(name, destination) for name, template in estate.templates.items()
             for destination in _replication_destinations(template)]
    assert len(rules) == 3  # charts both ways, trail to DR
    assert all(created_in[destination] in _deployed_before(estate, name) for name, destination in rules)


def test_dr_cluster_joins_a_global_cluster_that_already_exists(estate: Estate) -> None:
    primary, dr = estate.regions
    assert estate.stack_name("database", primary) in _dependencies(estate)[estate.stack_name("database", dr)]


def test_secret_replica_key_exists_before_the_secret(estate: Estate) -> None:
    primary, dr = estate.regions
    assert estate.stack_name("keys", dr) in _dependencies(estate)[estate.stack_name("database", primary)]


def test_health_checks_come_after_both_gate_alarms(estate: Estate) -> None:
    dependencies = _dependencies(estate)[estate.stack_name("traffic", estate.config.primary_region)]
    assert {estate.stack_name("traffic-gate", region) for region in estate.regions} <= dependencies


def test_dr_trail_bucket_exists_before_the_primary_trail_bucket_replicates_to_it(estate: Estate) -> None:
    primary, dr = estate.regions
    assert estate.stack_name("audit", dr) in _dependencies(estate)[estate.stack_name("audit", primary)]
