"""The topology: the static map of every resource a runbook touches, in both regions.

This module is the contract between `stacks/` and the runbooks. The stacks take every physical name from
`build_topology(config)` and publish the result as an SSM parameter in *each* region, so a runbook running in the
surviving region reads the whole map while the other region is dark (static stability). Names are deterministic from
the deployment config, so neither region's stack needs a cross-region reference for them, and the sandbox provisions
the very same names.

Topology is static; state is observed: nothing here says which region is writing now or how far replication lags.
Plain Python (pydantic): dr_runbooks never imports aws_cdk.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict

from dr_runbooks.config import DeploymentConfig

SCHEMA_VERSION = 1

#: Namespace and metric of the traffic gates (see `TrafficTopology`).
TRAFFIC_GATE_NAMESPACE = "EhrDr/Traffic"
TRAFFIC_GATE_METRIC = "Evacuate"
#: The gate metric's one dimension; its value is `TrafficGate.dimension_value`.
TRAFFIC_GATE_DIMENSION = "Region"
#: The failover records' TTL: how long a resolver may keep answering the old region after Route 53 changed (RTO).
TRAFFIC_RECORD_TTL_SECONDS = 60

#: Where the hourly readiness evaluation puts its verdict (`dr_runbooks.readiness.scheduled`): `Ready` 1/0 per region.
READINESS_NAMESPACE = "EhrDr/Readiness"
READY_METRIC = "Ready"

#: The runbook table items that record the gate states the runbooks set: pk `traffic-gate#<env>`, sk the region.
GATE_RECORD_PREFIX = "traffic-gate#"

#: The tag every scratch resource of a restore drill carries (value: the run id), so the next run finds leftovers.
DRILL_TAG_KEY = "ehr-dr:restore-drill"
#: The instance class the database stack gives the records cluster's instance. A restore drill's scratch instance
#: takes the live DR cluster's class as deployed; this one only when that cluster runs headless (no instance).
RECORDS_DB_INSTANCE_CLASS = "db.r6g.large"

#: What each regional alarm watches; the alarm's name is `ehr-dr-<env>-<what>`.
REGIONAL_ALARMS = (
    "s3-replication-latency",
    "s3-replication-failed",
    "aurora-global-lag",
    "backup-job-failed",
    "backup-copy-failed",
)
#: Alarms on global events, kept in the primary region where the multi-region trail delivers its logs.
PRIMARY_ONLY_ALARMS = ("break-glass-assumed",)

AccessRole = Literal["platform-admin", "dr-operator", "auditor", "break-glass"]
ACCESS_ROLES: tuple[AccessRole, ...] = ("platform-admin", "dr-operator", "auditor", "break-glass")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegionalResources(_Frozen):
    """What one region holds. `home` is the region's role in the design, not who writes now (that is observed)."""

    region: str
    home: Literal["primary", "dr"]
    kms_key_alias: str
    chart_bucket: str
    access_log_bucket: str
    evidence_bucket: str
    db_cluster_id: str
    backup_vault: str
    oncall_topic_arn: str
    runbook_table: str
    alarm_names: tuple[str, ...]
    #: The role AWS Backup assumes for this region's backup, copy and restore jobs (restore drills pass it).
    backup_role_arn: str
    #: The role S3 Batch Operations assumes for `drctl retention sync --batch` (docs/lifecycle.md).
    retention_batch_role_arn: str | None = None


class TrafficGate(_Frozen):
    """The switch that takes `region` out of DNS: a CloudWatch alarm on a metric, kept in the *partner* region.

    Route 53 health checks are a data plane; changing records is a control plane that lives in us-east-1. So the
    record of `region` is healthy only while its endpoint answers AND this alarm is OK. A runbook evacuates `region`
    by putting `Evacuate=1` into the metric in `alarm_region` (the surviving one) and restores it with `0`; the
    alarm treats missing data as "keep the current state", so one data point holds until the next.
    """

    region: str
    alarm_region: str
    alarm_name: str
    dimension_value: str


class TrafficTopology(_Frozen):
    hosted_zone_name: str
    record_name: str
    endpoints: dict[str, str]
    gates: dict[str, TrafficGate]


class RecordsLifecycle(_Frozen):
    """How long records are kept (the config's values, for the lifecycle runbooks: docs/lifecycle.md)."""

    retention_years: int = 7
    minor_age_of_majority: int = 18
    minor_retention_years: int = 7
    backup_retention_days: int = 35


class Topology(_Frozen):
    schema_version: int = SCHEMA_VERSION
    env_name: str
    account: str
    primary_region: str
    dr_region: str
    rto_minutes: int
    rpo_minutes: int
    availability_target: float
    global_cluster_id: str
    database_name: str
    db_secret_name: str
    role_arns: dict[str, str]
    regions: dict[str, RegionalResources]
    traffic: TrafficTopology | None = None
    lifecycle: RecordsLifecycle = RecordsLifecycle()

    def in_region(self, region: str) -> RegionalResources:
        """The resources of `region`, or a clear error naming the regions this estate has."""
        try:
            return self.regions[region]
        except KeyError:
            raise ValueError(
                f"region {region!r} is not part of environment {self.env_name!r} "
                f"(its regions: {self.primary_region}, {self.dr_region})"
            ) from None

    def partner(self, region: str) -> str:
        """The other region of the pair."""
        self.in_region(region)
        return self.dr_region if region == self.primary_region else self.primary_region

    def to_json(self) -> str:
        """Compact JSON: an SSM standard parameter holds 4 KB, an advanced one 8 KB."""
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def from_json(cls, text: str) -> Topology:
        topology = cls.model_validate(json.loads(text))
        if topology.schema_version != SCHEMA_VERSION:
            raise ValueError(
                f"topology schema version {topology.schema_version} is not {SCHEMA_VERSION}: "
                "redeploy the stacks or upgrade drctl"
            )
        return topology


def name_prefix(config: DeploymentConfig) -> str:
    return f"ehr-dr-{config.env_name}"


def parameter_name(env_name: str) -> str:
    """Where the topology lives in SSM Parameter Store, the same name in both regions."""
    return f"/ehr-dr/{env_name}/topology"


def bucket_name(config: DeploymentConfig, purpose: str, region: str) -> str:
    """Globally unique, deterministic bucket names: `ehr-dr-<env>-<purpose>-<account>-<region>` (<= 63 chars)."""
    name = f"{name_prefix(config)}-{purpose}-{config.account}-{region}"
    if len(name) > 63:
        raise ValueError(f"env_name: too long for bucket name {name!r} ({len(name)} > 63 characters)")
    return name


def drill_scratch_prefix(env_name: str) -> str:
    """What every scratch resource of a restore drill's name starts with (how leftovers not yet tagged are found)."""
    return f"ehr-dr-{env_name}-rd-"


def drill_scratch_name(env_name: str, run_id: str) -> str:
    """The scratch cluster and bucket a restore drill restores into: `ehr-dr-<env>-rd-<time>-<random>` from the run
    id (lowercase, <= 50 characters: a valid bucket name and cluster id), so leftovers name the run that made them."""
    stamp, *_, random_part = run_id.split("-")
    return f"{drill_scratch_prefix(env_name)}{stamp.lower()}-{random_part}"


def drill_scratch_instance_name(cluster_id: str) -> str:
    """The one DB instance a restore drill adds to its scratch cluster (AWS Backup restores an Aurora cluster
    without any): the cluster id plus `-1` (<= 52 characters; RDS allows 63), so it shares the scratch prefix and
    a re-invoked step finds the instance it created instead of adding another."""
    return f"{cluster_id}-1"


#: How AWS names the system snapshot of an old primary's volume it takes after a managed failover, before rebuilding
#: it: `rds:unplanned-global-failover-<old primary cluster>-<timestamp>` (Aurora User Guide, "Using switchover or
#: failover in Amazon Aurora Global Database"). It expires with that cluster's backup retention.
FAILOVER_SNAPSHOT_PREFIX = "rds:unplanned-global-failover-"
#: The tag a kept copy of such a snapshot carries: the identifier of the snapshot it keeps (so each is kept once).
KEPT_FROM_TAG_KEY = "ehr-dr:kept-from"


def lost_writes_snapshot_prefix(env_name: str) -> str:
    """What the manual copies failback keeps of AWS's failover snapshots are named with (IAM scopes them by it)."""
    return f"ehr-dr-{env_name}-lost-writes-"


def lost_writes_snapshot_name(env_name: str, run_id: str) -> str:
    """The manual snapshot a failback keeps the old writer's failover snapshot as: the prefix and the run id,
    lowercase (RDS snapshot identifiers: a letter first, letters, digits and single hyphens)."""
    return f"{lost_writes_snapshot_prefix(env_name)}{run_id.lower()}"


def role_name(config: DeploymentConfig, role: AccessRole) -> str:
    return f"{name_prefix(config)}-{role}"


def alarm_name(config: DeploymentConfig, what: str) -> str:
    return f"{name_prefix(config)}-{what}"


def runbook_function_name(env_name: str) -> str:
    """The Lambda function the runbook state machines of a region call (the same name in both regions)."""
    return f"ehr-dr-{env_name}-runbooks"


#: The environment variable that tells a runbook function which environment it serves (set by the orchestration stack).
FUNCTION_ENV_VARIABLE = "EHR_DR_ENV"


def database_function_name(env_name: str) -> str:
    """The Lambda function, in each region's records VPC, that runs the steps connecting to that region's database."""
    return f"ehr-dr-{env_name}-runbooks-db"


def heartbeat_schedule_name(env_name: str) -> str:
    """The EventBridge Scheduler schedule, the same name in both regions, that invokes the heartbeat every minute."""
    return f"ehr-dr-{env_name}-heartbeat"


def evaluation_schedule_name(env_name: str) -> str:
    """The EventBridge Scheduler schedule, the same name in both regions, that runs the readiness evaluation hourly."""
    return f"ehr-dr-{env_name}-evaluate"


def state_machine_name(env_name: str, runbook: str) -> str:
    """A runbook's Step Functions state machine, the same name in both regions (`drctl <runbook> --remote`)."""
    return f"ehr-dr-{env_name}-{runbook}"


def state_machine_arn(topology: Topology, region: str, runbook: str) -> str:
    topology.in_region(region)
    return f"arn:aws:states:{region}:{topology.account}:stateMachine:{state_machine_name(topology.env_name, runbook)}"


def _regional(config: DeploymentConfig, region: str) -> RegionalResources:
    prefix = name_prefix(config)
    home = "primary" if region == config.primary_region else "dr"
    alarms = REGIONAL_ALARMS + (PRIMARY_ONLY_ALARMS if home == "primary" else ())
    return RegionalResources(
        region=region,
        home=home,
        kms_key_alias=f"alias/{prefix}-data",
        chart_bucket=bucket_name(config, "charts", region),
        access_log_bucket=bucket_name(config, "s3logs", region),
        evidence_bucket=bucket_name(config, "evidence", region),
        db_cluster_id=f"{prefix}-records-{region}",
        backup_vault=f"{prefix}-vault-{region}",
        oncall_topic_arn=f"arn:aws:sns:{region}:{config.account}:{prefix}-oncall",
        runbook_table=f"{prefix}-runbooks",
        alarm_names=tuple(alarm_name(config, what) for what in alarms),
        backup_role_arn=f"arn:aws:iam::{config.account}:role/{prefix}-backup-{region}",
        retention_batch_role_arn=f"arn:aws:iam::{config.account}:role/{prefix}-retention-batch-{region}",
    )


def _traffic(config: DeploymentConfig) -> TrafficTopology | None:
    if not config.manages_traffic:
        return None
    assert config.hosted_zone_name and config.primary_endpoint and config.dr_endpoint
    zone = config.hosted_zone_name.rstrip(".")
    partner = {config.primary_region: config.dr_region, config.dr_region: config.primary_region}
    return TrafficTopology(
        hosted_zone_name=zone,
        record_name=f"{config.app_record_name}.{zone}",
        endpoints={config.primary_region: config.primary_endpoint, config.dr_region: config.dr_endpoint},
        gates={
            region: TrafficGate(
                region=region,
                alarm_region=partner[region],
                alarm_name=alarm_name(config, f"evacuate-{region}"),
                dimension_value=region,
            )
            for region in config.regions
        },
    )


def build_topology(config: DeploymentConfig) -> Topology:
    """Every name the stacks deploy and the runbooks touch, derived from the config alone."""
    prefix = name_prefix(config)
    return Topology(
        env_name=config.env_name,
        account=config.account,
        primary_region=config.primary_region,
        dr_region=config.dr_region,
        rto_minutes=config.rto_minutes,
        rpo_minutes=config.rpo_minutes,
        availability_target=config.availability_target,
        global_cluster_id=f"{prefix}-records",
        database_name="records",
        db_secret_name=f"{prefix}/records/admin",
        role_arns={role: f"arn:aws:iam::{config.account}:role/{role_name(config, role)}" for role in ACCESS_ROLES},
        regions={region: _regional(config, region) for region in config.regions},
        traffic=_traffic(config),
        lifecycle=RecordsLifecycle(retention_years=config.retention_years,
                                   minor_age_of_majority=config.minor_age_of_majority,
                                   minor_retention_years=config.minor_retention_years,
                                   backup_retention_days=config.backup_retention_days),
    )
