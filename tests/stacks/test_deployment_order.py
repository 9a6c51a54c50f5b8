"""The stacks of both regions: named for what they hold, and ordered so a first `cdk deploy --all` can succeed."""

from __future__ import annotations

import json

from stack_assembly import Estate

REGIONAL = ("keys", "archive", "runbooks", "monitoring", "database", "backup", "audit", "traffic-gate", "orchestration")


def _dependencies(estate: Estate) -> dict[str, set[str]]:
    artifacts = json.loads((estate.outdir / "manifest.json").read_text())["artifacts"]
    return {name: set(artifact.get("dependencies", ())) for name, artifact in artifacts.items()
            if artifact["type"] == "aws:cloudformation:stack"}


def test_each_region_has_one_stack_per_concern(estate: Estate) -> None:
    expected = {estate.stack_name(concern, region) for concern in REGIONAL for region in estate.regions}
    primary = estate.config.primary_region
    expected |= {estate.stack_name("access", primary), estate.stack_name("traffic", primary)}
    assert set(estate.templates) == expected


def test_dr_chart_bucket_exists_before_the_primary_replicates_to_it(estate: Estate) -> None:
    primary, dr = estate.regions
    assert estate.stack_name("archive", dr) in _dependencies(estate)[estate.stack_name("archive", primary)]


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
