"""One synth of the whole estate per test session (per xdist worker): synth costs seconds, assertions cost nothing.

The estate is synthesized with the project's cdk.json plus the traffic keys, so every stack exists; the compliance
packs run during that synth, so a finding fails the fixture and every test that uses it.
"""

from __future__ import annotations

import os

# jsii starts node when aws_cdk is first imported: silence node 20's end-of-life banner before that happens.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import json
from collections.abc import Iterator

import pytest
from stack_assembly import Estate

from dr_runbooks.config import DeploymentConfig
from dr_runbooks.topology import build_topology
from stacks.app import build_app, cdk_json_context

TRAFFIC = {"hosted_zone_name": "example.org", "primary_endpoint": "east.example.org", "dr_endpoint": "west.example.org"}


@pytest.fixture(scope="session")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    outdir = tmp_path_factory.mktemp("cdk.out")
    context = cdk_json_context(TRAFFIC)
    build_app(context, outdir=str(outdir)).synth()
    templates = {path.name.removesuffix(".template.json"): json.loads(path.read_text())
                 for path in outdir.glob("*.template.json")}
    config = DeploymentConfig.from_context(context)
    yield Estate(outdir=outdir, config=config, topology=build_topology(config), templates=templates)


@pytest.fixture(params=["us-east-1", "us-west-1"])
def region(request: pytest.FixtureRequest) -> str:
    """Each test taking `region` runs once per region of the demo config."""
    return request.param
