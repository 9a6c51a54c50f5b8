"""The topology: deterministic names from the config, the same in the stacks, the sandbox and the runbooks."""

import pytest

from dr_runbooks.config import DeploymentConfig
from dr_runbooks.topology import SCHEMA_VERSION, Topology, build_topology, parameter_name

CONFIG = DeploymentConfig.from_context({"env_name": "prod", "account": "210987654321"})
WITH_TRAFFIC = DeploymentConfig.from_context(
    {
        **CONFIG.model_dump(),
        "hosted_zone_name": "example.org",
        "primary_endpoint": "east.example.org",
        "dr_endpoint": "west.example.org",
    }
)


def test_building_twice_gives_the_same_names():
    assert build_topology(CONFIG) == build_topology(CONFIG)


def test_every_bucket_name_is_valid_for_s3():
    names = [name for r in build_topology(CONFIG).regions.values()
             for name in (r.chart_bucket, r.access_log_bucket, r.evidence_bucket)]
    assert all(3 <= len(name) <= 63 and name == name.lower() for name in names)
    assert len(set(names)) == len(names)


def test_the_longest_env_name_still_fits_bucket_names_in_the_longest_region():
    config = DeploymentConfig.from_context(
        {"env_name": "a" * 16, "account": "210987654321", "dr_region": "ap-southeast-7"}
    )
    assert len(build_topology(config).in_region("ap-southeast-7").evidence_bucket) <= 63


def test_each_region_knows_its_home_role():
    topology = build_topology(CONFIG)
    assert (topology.in_region("us-east-1").home, topology.in_region("us-west-1").home) == ("primary", "dr")


def test_break_glass_alarm_lives_only_in_the_primary_region():
    topology = build_topology(CONFIG)
    assert "ehr-dr-prod-break-glass-assumed" in topology.in_region("us-east-1").alarm_names
    assert "ehr-dr-prod-break-glass-assumed" not in topology.in_region("us-west-1").alarm_names


def test_a_region_outside_the_estate_is_a_clear_error():
    with pytest.raises(ValueError, match="region 'eu-west-1' is not part of environment 'prod'"):
        build_topology(CONFIG).in_region("eu-west-1")


def test_partner_of_each_region_is_the_other():
    topology = build_topology(CONFIG)
    assert (topology.partner("us-east-1"), topology.partner("us-west-1")) == ("us-west-1", "us-east-1")


def test_without_traffic_keys_traffic_is_not_managed():
    assert build_topology(CONFIG).traffic is None


def test_each_traffic_gate_is_kept_in_the_partner_region():
    gates = build_topology(WITH_TRAFFIC).traffic.gates
    assert {region: gate.alarm_region for region, gate in gates.items()} == {
        "us-east-1": "us-west-1",
        "us-west-1": "us-east-1",
    }


def test_json_round_trip_preserves_the_topology():
    topology = build_topology(WITH_TRAFFIC)
    assert Topology.from_json(topology.to_json()) == topology


def test_topology_fits_an_ssm_standard_parameter():
    assert len(build_topology(WITH_TRAFFIC).to_json().encode()) <= 4096


def test_a_topology_of_another_schema_version_is_refused():
    stale = build_topology(CONFIG).model_copy(update={"schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(ValueError, match="redeploy the stacks or upgrade drctl"):
        Topology.from_json(stale.to_json())


def test_parameter_name_is_per_environment():
    assert parameter_name("prod") == "/ehr-dr/prod/topology"
