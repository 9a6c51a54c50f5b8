"""The evidence record: what one runbook or drill run leaves behind for an auditor.

One schema for every producer (the engine's runbooks, the drills, `drctl verify replication`) so that one report
renderer and one tamper-evident chain serve them all. A producer fills in what happened; the chain fields
(`sequence`, `previous_hash`, `record_hash`) are left empty and set by `EvidenceLog.append`, which is the only place
that knows the end of the chain. Timestamps must carry a zone (an auditor compares them across regions) and are kept
in UTC so that the canonical JSON, and with it the hash, does not depend on the producer's clock settings.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

SCHEMA_VERSION = 1

RunbookKind = Literal[
    "switchover",
    "failover",
    "failback",
    "restore-drill",
    "failover-drill",
    "verify-replication",
    "verify-charts",
    "backup",
    "retention-sync",
    "legal-hold",
    "legal-release",
    "disposal",
    "readiness",
]

#: 45 CFR 164.308(a)(7)(ii): the contingency-plan implementation specifications a record can be evidence for.
HipaaParagraph = Literal["A", "B", "C", "D", "E"]
HIPAA_PARAGRAPHS: dict[HipaaParagraph, str] = {
    "A": "Data backup plan",
    "B": "Disaster recovery plan",
    "C": "Emergency mode operation plan",
    "D": "Testing and revision procedures",
    "E": "Applications and data criticality analysis",
}

#: What a run of each kind demonstrates when its producer does not say otherwise. A drill is a test (D) of the plan it
#: exercises; runs that measure recovery against the RTO/RPO targets set per data set speak to the criticality
#: analysis (E) those targets come from; checking the replica is evidence that the backup copy exists (A), checking
#: both copies against the records database that they are exact copies (A), and so is an on-demand backup copied to
#: the other region (A). An hourly readiness evaluation tests the recovery plan against the live estate (B, D).
DEFAULT_HIPAA: dict[RunbookKind, tuple[HipaaParagraph, ...]] = {
    "switchover": ("B", "C"),
    "failover": ("B", "C"),
    "failback": ("B", "C"),
    "restore-drill": ("A", "D", "E"),
    "failover-drill": ("B", "C", "D", "E"),
    "verify-replication": ("A",),
    "verify-charts": ("A",),
    "backup": ("A",),
    # The records lifecycle is evidence for 164.310(d)(2)(i) (disposal) and 164.316(b)(2) (retention), outside
    # 164.308(a)(7)(ii): the report gives it its own section.
    "retention-sync": (),
    "legal-hold": (),
    "legal-release": (),
    "disposal": (),
    "readiness": ("B", "D"),
}

Outcome = Literal["succeeded", "failed", "skipped", "aborted"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


class Identity(_Record):
    """Who ran it: the caller identity STS reported, and whether the session was MFA-authenticated."""

    caller_arn: str
    account: str | None = None
    mfa_used: bool
    role_arn: str | None = Field(None, description="the role the run assumed (e.g. the dr-operator role), if any")


class AwsCall(_Record):
    """One AWS API call a step made (or, under --dry-run, would make)."""

    service: str
    operation: str
    region: str | None = None
    target: str | None = Field(None, description="the resource the call acted on, e.g. a bucket or cluster id")
    request_id: str | None = None
    error: str | None = None


class Step(_Record):
    """One step of the run's timeline."""

    name: str
    started_at: AwareDatetime
    ended_at: AwareDatetime
    outcome: Outcome
    detail: str | None = None
    aws_calls: tuple[AwsCall, ...] = ()

    _in_utc = field_validator("started_at", "ended_at")(_utc)

    @model_validator(mode="after")
    def _ends_after_start(self) -> Step:
        if self.ended_at < self.started_at:
            raise ValueError(f"step {self.name!r}: ended_at is before started_at")
        return self

    @property
    def duration_seconds(self) -> float:
        return (self.ended_at - self.started_at).total_seconds()


class Objective(_Record):
    """A measured recovery objective (RTO or RPO) against its target. `measured_seconds` None: not measured."""

    measured_seconds: float | None = Field(ge=0)
    target_seconds: float = Field(gt=0)
    how: str = Field(description="how it was measured, e.g. 'last canary row found after promotion'")

    @property
    def met(self) -> bool:
        return self.measured_seconds is not None and self.measured_seconds <= self.target_seconds


class Verification(_Record):
    """One thing verified: what, how (the method, so an auditor can judge it), the result and the counts."""

    what: str
    how: str
    result: Literal["passed", "failed", "skipped"]
    checked: int = Field(0, ge=0)
    mismatched: int = Field(0, ge=0)
    detail: str | None = None


class DnsOutcome(_Record):
    """Where DNS answered after a run moved traffic: confirmed by Route 53's API (it signs in us-east-1, so only
    while that region answers), or only expected from the gate alarms and Route 53's documented behaviour."""

    answer_region: str | None = Field(description="the region DNS answers; None: an unknown gate decides")
    confirmed: bool
    how: str
    effective_at: AwareDatetime | None = Field(None, description="when resolvers follow: the answer plus the TTL")

    _in_utc = field_validator("effective_at")(_utc)


class RunError(_Record):
    """An error the run met; `step` names the step of the timeline it happened in, when there is one."""

    message: str
    step: str | None = None


class EvidenceRecord(_Record):
    """One run of a runbook or drill, as evidence. Build it with the run's facts; `EvidenceLog.append` seals it."""

    schema_version: int = SCHEMA_VERSION
    run_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    kind: RunbookKind
    environment: str = Field(min_length=1)
    from_region: str | None = None
    to_region: str | None = None
    identity: Identity
    started_at: AwareDatetime
    ended_at: AwareDatetime
    outcome: Outcome
    timeline: tuple[Step, ...] = ()
    rto: Objective | None = None
    rpo: Objective | None = None
    downtime_seconds: float = Field(
        0.0, ge=0, description="measured user-facing downtime this run caused; it is charged to the availability budget"
    )
    verifications: tuple[Verification, ...] = ()
    dns: DnsOutcome | None = None
    errors: tuple[RunError, ...] = ()
    sandbox: bool = Field(description="ran on the local sandbox: its timings say nothing about AWS timings")
    hipaa: tuple[HipaaParagraph, ...] = Field(
        (),
        validate_default=True,
        description="164.308(a)(7)(ii) paragraphs it is evidence for; empty: the default of its kind",
    )
    # Set by EvidenceLog.append, never by a producer:
    sequence: int | None = Field(None, ge=0)
    previous_hash: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    record_hash: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")

    _in_utc = field_validator("started_at", "ended_at")(_utc)

    @field_validator("hipaa")
    @classmethod
    def _default_of_kind(cls, value: tuple[HipaaParagraph, ...], info: ValidationInfo) -> tuple[HipaaParagraph, ...]:
        if value or "kind" not in info.data:
            return tuple(sorted(set(value)))
        return DEFAULT_HIPAA[info.data["kind"]]

    @model_validator(mode="after")
    def _coherent(self) -> EvidenceRecord:
        if self.ended_at < self.started_at:
            raise ValueError(f"run {self.run_id}: ended_at is before started_at")
        return self

    @property
    def duration_seconds(self) -> float:
        return (self.ended_at - self.started_at).total_seconds()

    @property
    def passed(self) -> bool:
        """Succeeded, every verification passed and every measured objective met its target."""
        objectives = [objective for objective in (self.rto, self.rpo) if objective is not None]
        return (
            self.outcome == "succeeded"
            and all(verification.result != "failed" for verification in self.verifications)
            and all(objective.met for objective in objectives)
        )

    def canonical_json(self) -> bytes:
        """The bytes the hash covers: everything but `record_hash`, keys sorted, no whitespace, UTF-8."""
        # A record without `dns` hashes as it did before the field existed: sealed chains stay valid.
        body = self.model_dump(mode="json", exclude={"record_hash"} | ({"dns"} if self.dns is None else set()))
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def compute_hash(self) -> str:
        return hashlib.sha256(self.canonical_json()).hexdigest()
