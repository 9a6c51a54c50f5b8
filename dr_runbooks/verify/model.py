"""What a replication check compares and finds: the current state of a key on each side, and their differences."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

DifferenceKind = Literal[
    "missing-on-replica",
    "extra-on-replica",
    "delete-marker-not-replicated",
    "delete-marker-on-replica-only",
    "size-mismatch",
    "checksum-mismatch",
    "checksum-missing",
]

#: Differences that re-driving replication of the source's current version repairs.
REPAIRABLE: frozenset[DifferenceKind] = frozenset({"missing-on-replica", "size-mismatch", "checksum-mismatch"})


class ObjectState(BaseModel):
    """The current version of a key on one side: an object, or a delete marker (only versioned listings see those)."""

    model_config = ConfigDict(frozen=True)

    key: str
    delete_marker: bool = False
    size: int | None = None
    version_id: str | None = None
    etag: str | None = None
    checksum_sha256: str | None = None


class Difference(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    kind: DifferenceKind
    source: ObjectState | None = None
    replica: ObjectState | None = None

    @property
    def repairable(self) -> bool:
        return self.kind in REPAIRABLE and self.source is not None and not self.source.delete_marker


class Repair(BaseModel):
    """One re-driven version: the source version copied in place, and the new version id replication will carry."""

    model_config = ConfigDict(frozen=True)

    key: str
    source_version_id: str | None
    new_version_id: str | None
    error: str | None = None


class ReplicationReport(BaseModel):
    """The outcome of `drctl verify replication`, also its `--output json`."""

    source: str
    replica: str
    mode: Literal["list", "inventory"]
    listing: str
    deep: bool
    compared: int
    differences: list[Difference]
    repairs: list[Repair] = []
    requests: int = 0
    seconds: float = 0.0

    @property
    def in_sync(self) -> bool:
        return not self.differences

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for difference in self.differences:
            counts[difference.kind] = counts.get(difference.kind, 0) + 1
        return counts

    def summary(self, sample: int) -> ReplicationSummary:
        """The report with its differences counted and only the first `sample` of them kept."""
        return ReplicationSummary(
            source=self.source, replica=self.replica, mode=self.mode, listing=self.listing, deep=self.deep,
            compared=self.compared, difference_counts=self.counts(), sample=self.differences[:sample],
            repairs=self.repairs, requests=self.requests, seconds=self.seconds)


class ReplicationSummary(BaseModel):
    """A report whose differences are counted by kind with a bounded sample kept: what a plan step journals (a
    journal item, a Lambda's output and a state's payload are bounded; an archive's differences are not)."""

    source: str
    replica: str
    mode: Literal["list", "inventory"]
    listing: str
    deep: bool
    compared: int
    difference_counts: dict[str, int]
    sample: list[Difference]
    repairs: list[Repair] = []
    requests: int = 0
    seconds: float = 0.0

    @property
    def in_sync(self) -> bool:
        return not self.difference_counts

    def counts(self) -> dict[str, int]:
        return dict(self.difference_counts)
