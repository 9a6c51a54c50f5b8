"""The synthesized estate as tests read it: templates by concern and region, the config and topology behind them.

A plain module (not conftest) so test modules can import `Estate` for their type hints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Template

from dr_runbooks.config import DeploymentConfig
from dr_runbooks.topology import Topology


@dataclass(frozen=True)
class Estate:
    """The synthesized cloud assembly of both regions."""

    outdir: Path
    config: DeploymentConfig
    topology: Topology
    templates: dict[str, dict[str, Any]] = field(repr=False)

    def stack_name(self, concern: str, region: str) -> str:
        return f"ehr-dr-{self.config.env_name}-{concern}-{region}"

    def template(self, concern: str, region: str) -> Template:
        return _as_template(json.dumps(self.templates[self.stack_name(concern, region)]))

    def resources(self, concern: str, region: str, resource_type: str) -> dict[str, dict[str, Any]]:
        """Logical id -> resource of one type, from the plain JSON (cheap, no jsii round trip)."""
        resources = self.templates[self.stack_name(concern, region)]["Resources"]
        return {lid: res for lid, res in resources.items() if res["Type"] == resource_type}

    def only(self, concern: str, region: str, resource_type: str) -> dict[str, Any]:
        found = list(self.resources(concern, region, resource_type).values())
        assert len(found) == 1, f"expected one {resource_type} in {concern}-{region}, found {len(found)}"
        return found[0]["Properties"]

    @property
    def regions(self) -> tuple[str, str]:
        return self.config.regions


@cache
def _as_template(text: str) -> Template:
    return Template.from_json(json.loads(text))
