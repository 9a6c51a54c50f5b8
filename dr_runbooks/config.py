"""The deployment config: the few values that decide the whole estate.

It is read from flat `cdk.json` context keys (overridable with `cdk synth -c KEY=VALUE`) by `stacks/`, and from the same
file by the sandbox, so one file describes what is deployed and what is rehearsed. It is validated before anything is
built: every violation is one line naming its key, because the person reading it is fixing a cdk.json at a prompt.
Plain Python (pydantic), never aws_cdk: the runbooks and the Lambda package import it too.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MINUTES_PER_MONTH = 365.25 * 24 * 60 / 12

#: The keys this module reads from the CDK context; everything else there (feature flags, lookups) is CDK's.
CONFIG_KEYS = (
    "env_name",
    "account",
    "primary_region",
    "dr_region",
    "retention_years",
    "minor_age_of_majority",
    "minor_retention_years",
    "backup_retention_days",
    "archive_cold_after_days",
    "rto_minutes",
    "rpo_minutes",
    "availability_target",
    "alarm_email",
    "hosted_zone_name",
    "app_record_name",
    "primary_endpoint",
    "dr_endpoint",
    "restore_drill_schedule",
    "restore_drill_enabled",
    "verify_replication_schedule",
    "verify_replication_enabled",
    "game_day_schedule",
    "game_day_enabled",
    "retention_sync_schedule",
    "retention_sync_enabled",
    "schedule_timezone",
)

#: EventBridge Scheduler's cron: `cron(minutes hours day-of-month month day-of-week year)`, one of the two days `?`.
SCHEDULER_CRON = r"^cron\((\S+ ){5}\S+\)$"


class ConfigError(ValueError):
    """A deployment config that must not be deployed; `str()` is one line per violation, each naming its key."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@cache
def known_regions() -> frozenset[str]:
    """Regions of the commercial partition with S3 or RDS, from botocore's bundled endpoint data: offline, and current
    with the installed botocore.

    The file is read directly, without importing boto3 or making a session (0.3 s that every `cdk synth` paid for a
    region list); the answer is the same as `Session().get_available_regions` for s3 and rds, which a test checks.
    """
    botocore = importlib.util.find_spec("botocore")
    if botocore is None or not botocore.submodule_search_locations:
        raise RuntimeError("botocore is not installed: its endpoint data is the list of AWS regions")
    endpoints = Path(botocore.submodule_search_locations[0]) / "data" / "endpoints.json"
    aws = next(partition for partition in json.loads(endpoints.read_text())["partitions"]
               if partition["partition"] == "aws")
    return frozenset(name for service in ("s3", "rds") for name in aws["services"][service]["endpoints"]
                     if name in aws["regions"])


class DeploymentConfig(BaseModel):
    """One environment of the estate: where it runs, how long it keeps data, what recovery it promises."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env_name: str = Field(
        pattern=r"^[a-z][a-z0-9-]{1,14}[a-z0-9]$",
        description="3-16 lowercase letters, digits or '-': it is part of every physical name (bucket names <= 63).",
    )
    account: str = Field(pattern=r"^\d{12}$", description="the 12-digit AWS account id")
    primary_region: str = "us-east-1"
    dr_region: str = "us-west-1"
    retention_years: int = Field(7, ge=7, le=100,
                                 description="charts are kept this many years after the patient's last visit")
    # Minors: kept until `minor_age_of_majority` plus `minor_retention_years`, if that is later (docs/lifecycle.md).
    minor_age_of_majority: int = Field(18, ge=14, le=25, description="the age at which a patient is no longer a minor")
    minor_retention_years: int = Field(7, ge=0, le=100, description="years a minor's charts are kept past majority")
    backup_retention_days: int = Field(
        35, ge=7, le=35, description="point-in-time window (Aurora and AWS Backup continuous backups allow 1-35)"
    )
    archive_cold_after_days: int = Field(90, ge=30, description="age at which chart versions move to Glacier IR")
    rto_minutes: int = Field(15, ge=1, description="recovery time objective of a regional failover")
    rpo_minutes: int = Field(15, ge=1, le=60, description="recovery point objective (S3 RTC replicates in 15 min)")
    availability_target: float = Field(0.9995, gt=0.9, lt=1.0)
    alarm_email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    hosted_zone_name: str | None = Field(None, pattern=r"^([a-z0-9-]+\.)+[a-z]{2,}\.?$")
    app_record_name: str = Field("records", pattern=r"^[a-z0-9-]+$")
    primary_endpoint: str | None = Field(None, pattern=r"^[a-z0-9.-]+$", description="the app's hostname in primary")
    dr_endpoint: str | None = Field(None, pattern=r"^[a-z0-9.-]+$", description="the app's hostname in the DR region")
    # Scheduled runs (EventBridge Scheduler, stacks/orchestration.py), in `schedule_timezone`.
    restore_drill_schedule: str = Field("cron(0 6 ? * SUN *)", pattern=SCHEDULER_CRON, description="weekly")
    restore_drill_enabled: bool = True
    verify_replication_schedule: str = Field("cron(0 5 * * ? *)", pattern=SCHEDULER_CRON, description="daily")
    verify_replication_enabled: bool = True
    game_day_schedule: str = Field("cron(0 15 ? 1,4,7,10 TUE#2 *)", pattern=SCHEDULER_CRON,
                                   description="quarterly: a failover game day needs people at hand")
    game_day_enabled: bool = Field(False, description="off until the team has agreed the game day's date")
    # In both regions: it runs where the records database writes, and is skipped in the other.
    retention_sync_schedule: str = Field("cron(0 3 * * ? *)", pattern=SCHEDULER_CRON,
                                         description="daily: drctl retention sync of the patients seen since")
    retention_sync_enabled: bool = True
    schedule_timezone: str = "UTC"

    @field_validator("primary_region", "dr_region")
    @classmethod
    def _is_a_region(cls, value: str) -> str:
        if value not in known_regions():
            raise ValueError(f"{value!r} is not an AWS region")
        return value

    @field_validator("restore_drill_schedule", "verify_replication_schedule", "game_day_schedule",
                     "retention_sync_schedule")
    @classmethod
    def _one_day_field_open(cls, value: str) -> str:
        fields = value.removeprefix("cron(").removesuffix(")").split()
        if (fields[2] == "?") == (fields[4] == "?"):
            raise ValueError("exactly one of day-of-month and day-of-week must be '?'")
        return value

    @field_validator("schedule_timezone")
    @classmethod
    def _is_a_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. UTC, America/Los_Angeles)") from None
        return value

    @model_validator(mode="after")
    def _coherent(self) -> DeploymentConfig:
        if self.dr_region == self.primary_region:
            raise ValueError(f"dr_region: must differ from primary_region ({self.primary_region})")
        if self.rto_minutes > self.monthly_downtime_budget_minutes:
            raise ValueError(
                f"rto_minutes: {self.rto_minutes} min exceeds the whole monthly downtime budget of "
                f"{self.monthly_downtime_budget_minutes:.1f} min at availability_target {self.availability_target}"
            )
        traffic = {"hosted_zone_name": self.hosted_zone_name, "primary_endpoint": self.primary_endpoint,
                   "dr_endpoint": self.dr_endpoint}
        given = [key for key, value in traffic.items() if value]
        if given and len(given) != len(traffic):
            missing = sorted(set(traffic) - set(given))
            raise ValueError(f"{missing[0]}: traffic management needs {', '.join(sorted(traffic))} together")
        return self

    @property
    def regions(self) -> tuple[str, str]:
        """Both regions, primary first."""
        return (self.primary_region, self.dr_region)

    @property
    def monthly_downtime_budget_minutes(self) -> float:
        """Downtime a month allows at the availability target (99.95% -> 21.9 min)."""
        return (1 - self.availability_target) * MINUTES_PER_MONTH

    @property
    def manages_traffic(self) -> bool:
        return bool(self.hosted_zone_name)

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> DeploymentConfig:
        """Validate the config keys of a CDK context (values from `-c` arrive as strings; pydantic coerces them)."""
        values = {key: context[key] for key in CONFIG_KEYS if context.get(key) not in (None, "")}
        try:
            return cls(**values)
        except ValidationError as error:
            raise ConfigError([_one_line(problem) for problem in error.errors()]) from None

    @classmethod
    def from_cdk_json(cls, path: Path, overrides: Mapping[str, Any] | None = None) -> DeploymentConfig:
        """The config a `cdk synth` in the folder of `path` would deploy, for the sandbox and drctl."""
        try:
            context = json.loads(path.read_text())["context"]
        except (OSError, KeyError, json.JSONDecodeError) as error:
            raise ConfigError([f"{path}: cannot read a CDK context from it ({error})"]) from None
        return cls.from_context({**context, **(overrides or {})})


def _one_line(problem: Mapping[str, Any]) -> str:
    """`key: what is wrong (got value)`; model-level problems already start with their key."""
    message = str(problem["msg"]).removeprefix("Value error, ")
    if not problem["loc"]:
        return message
    key = ".".join(str(part) for part in problem["loc"])
    if problem["type"] == "extra_forbidden":
        return f"{key}: not a deployment config key"
    return f"{key}: {message} (got {problem.get('input')!r})"

