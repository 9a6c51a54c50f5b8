"""The tamper-evident chain: each record of an environment holds the hash of the one before it.

Sealing gives a record its place (`sequence`), the hash of its predecessor and its own hash over the canonical JSON.
Verifying recomputes them: an edited record no longer matches its own hash; a removed, inserted or reordered record
breaks the sequence and the link to its predecessor. (Removing the *newest* record leaves a valid shorter chain: the
Object Lock copy in the evidence bucket is what keeps that one, which is why `EvidenceLog` writes there too.)
"""

from __future__ import annotations

from collections.abc import Sequence

from dr_runbooks.evidence.record import EvidenceRecord


class EvidenceError(ValueError):
    """Evidence that cannot be written or trusted; `str()` is one line an operator can act on."""


def seal(record: EvidenceRecord, previous: EvidenceRecord | None) -> EvidenceRecord:
    """`record` as the successor of `previous` (None: the first of its environment's chain), with its hash."""
    if record.record_hash is not None:
        raise EvidenceError(f"run {record.run_id} is already sealed (sequence {record.sequence})")
    if previous is not None and (previous.sequence is None or previous.record_hash is None):
        raise EvidenceError(f"run {previous.run_id} cannot precede another record: it is not sealed")
    if previous is not None and previous.environment != record.environment:
        raise EvidenceError(
            f"run {record.run_id} is for environment {record.environment!r}, the chain for {previous.environment!r}"
        )
    linked = record.model_copy(
        update={
            "sequence": 0 if previous is None or previous.sequence is None else previous.sequence + 1,
            "previous_hash": None if previous is None else previous.record_hash,
        }
    )
    return linked.model_copy(update={"record_hash": linked.compute_hash()})


def verify_chain(records: Sequence[EvidenceRecord]) -> list[str]:
    """Every break in the chain, one line each, oldest first; an empty list means the chain is intact."""
    problems: list[str] = []
    previous: EvidenceRecord | None = None
    for position, record in enumerate(records):
        name = f"record {record.sequence} (run {record.run_id})"
        if record.record_hash is None:
            problems.append(f"{name} is not sealed: it has no hash")
        elif record.compute_hash() != record.record_hash:
            problems.append(f"{name} was edited: its content no longer matches its hash")
        if record.sequence != position:
            problems.append(
                f"{name} is at position {position}: records were removed, inserted or reordered before it"
            )
        expected_previous = None if previous is None else previous.record_hash
        if record.previous_hash != expected_previous:
            what = "the start of the chain"
            if previous is not None:
                what = f"record {previous.sequence} (run {previous.run_id})"
            problems.append(f"{name} does not follow {what}: its previous_hash does not match")
        if previous is not None and record.environment != previous.environment:
            problems.append(f"{name} belongs to environment {record.environment!r}, not {previous.environment!r}")
        previous = record
    return problems
