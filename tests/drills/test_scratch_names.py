"""Scratch names of a restore drill: from the run id, valid as a bucket name and a cluster id, found by prefix."""

from __future__ import annotations

import re

from dr_runbooks.engine.journal import new_run_id
from dr_runbooks.topology import drill_scratch_name, drill_scratch_prefix

BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
CLUSTER_ID = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def test_the_longest_environment_name_still_gives_a_valid_bucket_name_and_cluster_id() -> None:
    name = drill_scratch_name("a" * 16, new_run_id("restore", "ap-southeast-2"))
    assert BUCKET.match(name) and CLUSTER_ID.match(name) and "--" not in name


def test_the_name_carries_the_run_ids_time_and_random_part_under_the_prefix() -> None:
    name = drill_scratch_name("demo", "20261122T031500Z-restore-us-west-1-3fa2c1")
    assert name == "ehr-dr-demo-rd-20261122t031500z-3fa2c1"
    assert name.startswith(drill_scratch_prefix("demo")) and not name.startswith(drill_scratch_prefix("dem"))
