"""The report's records-lifecycle section: retention synced when, legal holds in force, disposals and certificates.

Read from the evidence chain itself (the lifecycle runs' records), so an auditor sees it without the records database:
- 45 CFR 164.310(d)(2)(i), Disposal: each disposal's certificate of destruction (patients by id, counts, the digest of
  the deleted keys, when the last backups holding them expire);
- 45 CFR 164.316(b)(2), Time limit / retention of documentation: when retention was last synced with the records
  (charts kept until last visit + retention years), and the legal holds in force (who placed them, why, when).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dr_runbooks.evidence.record import EvidenceRecord

LIFECYCLE_KINDS = ("retention-sync", "legal-hold", "legal-release", "disposal")
REGULATIONS = (
    ("164.310(d)(2)(i)", "Disposal: disposals with their certificates of destruction"),
    ("164.316(b)(2)", "Retention: retention synced with the last visits; legal holds in force"),
)


def _facts(record: EvidenceRecord) -> dict[str, Any]:
    detail = record.verifications[0].detail if record.verifications else None
    try:
        return dict(json.loads(detail)) if detail else {}
    except ValueError:
        return {}


@dataclass(frozen=True)
class Certificate:
    record: EvidenceRecord
    facts: dict[str, Any]


@dataclass(frozen=True)
class LifecycleSection:
    last_sync: EvidenceRecord | None
    last_sync_facts: dict[str, Any]
    holds_in_force: tuple[dict[str, Any], ...]
    disposals: tuple[Certificate, ...]
    regulations: tuple[tuple[str, str], ...] = REGULATIONS

    @property
    def empty(self) -> bool:
        return self.last_sync is None and not self.holds_in_force and not self.disposals


def lifecycle_section(chain: Sequence[EvidenceRecord]) -> LifecycleSection:
    """From the whole chain, oldest first: a hold is in force from its passed legal-hold run until a passed release."""
    syncs = [record for record in chain if record.kind == "retention-sync" and record.passed]
    holds: dict[str, dict[str, Any]] = {}
    for record in chain:
        if record.kind == "legal-hold" and record.passed:
            facts = _facts(record)
            holds[facts["patient_id"]] = {**facts, "run_id": record.run_id}
        elif record.kind == "legal-release" and record.passed:
            holds.pop(_facts(record).get("patient_id", ""), None)
    return LifecycleSection(
        last_sync=syncs[-1] if syncs else None,
        last_sync_facts=_facts(syncs[-1]) if syncs else {},
        holds_in_force=tuple(holds.values()),
        disposals=tuple(Certificate(record, _facts(record)) for record in chain if record.kind == "disposal"),
    )
