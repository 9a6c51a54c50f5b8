"""`Site`: one region of the estate as the stacks see it: the config, the topology, and which side of the pair it is.

Every stack takes one, so a stack never derives a name itself: names come from `build_topology(config)`, and the
partner region's resources are named (never referenced), which keeps every stack free of cross-region references.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk

from dr_runbooks.config import DeploymentConfig
from dr_runbooks.topology import (
    FAILOVER_SNAPSHOT_PREFIX,
    RegionalResources,
    Topology,
    lost_writes_snapshot_prefix,
    name_prefix,
)


@dataclass(frozen=True)
class Site:
    config: DeploymentConfig
    topology: Topology
    region: str

    @property
    def env(self) -> cdk.Environment:
        return cdk.Environment(account=self.config.account, region=self.region)

    @property
    def is_primary(self) -> bool:
        return self.region == self.config.primary_region

    @property
    def home_index(self) -> int:
        """0 for the primary region, 1 for the DR region: for per-region constants like VPC address ranges."""
        return self.config.regions.index(self.region)

    @property
    def partner_region(self) -> str:
        return self.topology.partner(self.region)

    @property
    def here(self) -> RegionalResources:
        return self.topology.in_region(self.region)

    @property
    def partner(self) -> RegionalResources:
        return self.topology.in_region(self.partner_region)

    @property
    def prefix(self) -> str:
        return name_prefix(self.config)

    def stack_name(self, concern: str) -> str:
        """`ehr-dr-<env>-<concern>-<region>`: what a stack holds and where, readable in the console and the CLI."""
        return f"{self.prefix}-{concern}-{self.region}"

    def key_alias_arn(self, region: str) -> str:
        """The data key of `region` by alias: what S3 replication and Secrets Manager replicas accept across regions."""
        alias = self.topology.in_region(region).kms_key_alias
        return f"arn:aws:kms:{region}:{self.config.account}:{alias}"

    def bucket_arn(self, bucket: str) -> str:
        return f"arn:aws:s3:::{bucket}"

    def vault_arn(self, region: str) -> str:
        vault = self.topology.in_region(region).backup_vault
        return f"arn:aws:backup:{region}:{self.config.account}:backup-vault:{vault}"

    def cluster_arn(self, region: str) -> str:
        cluster = self.topology.in_region(region).db_cluster_id
        return f"arn:aws:rds:{region}:{self.config.account}:cluster:{cluster}"

    def failover_snapshot_arn(self, region: str) -> str:
        """AWS's `unplanned-global-failover` system snapshots of the region's cluster (any timestamp)."""
        cluster = self.topology.in_region(region).db_cluster_id
        return f"arn:aws:rds:{region}:{self.config.account}:cluster-snapshot:{FAILOVER_SNAPSHOT_PREFIX}{cluster}-*"

    def kept_snapshot_arn(self, region: str) -> str:
        """The manual copies of those a failback keeps (named by its run)."""
        prefix = lost_writes_snapshot_prefix(self.config.env_name)
        return f"arn:aws:rds:{region}:{self.config.account}:cluster-snapshot:{prefix}*"

    def table_arn(self, region: str) -> str:
        table = self.topology.in_region(region).runbook_table
        return f"arn:aws:dynamodb:{region}:{self.config.account}:table/{table}"
