"""The hash chain: an intact chain verifies; an edited, removed or reordered record is named."""

from __future__ import annotations

import pytest

from dr_runbooks.evidence.chain import EvidenceError, seal, verify_chain


@pytest.fixture
def chain(make_record):
    records = []
    for number in range(4):
        records.append(seal(make_record(run_id=f"run-{number}"), records[-1] if records else None))
    return records


def test_an_intact_chain_has_no_problems(chain):
    assert verify_chain(chain) == []


def test_sealing_links_each_record_to_its_predecessor(chain):
    assert [record.sequence for record in chain] == [0, 1, 2, 3]
    assert chain[2].previous_hash == chain[1].record_hash


def test_an_edited_record_is_named(chain):
    chain[1] = chain[1].model_copy(update={"downtime_seconds": 0.0})
    assert verify_chain(chain) == ["record 1 (run run-1) was edited: its content no longer matches its hash"]


def test_an_edited_and_rehashed_record_breaks_the_link_of_its_successor(chain):
    edited = chain[1].model_copy(update={"downtime_seconds": 0.0})
    chain[1] = edited.model_copy(update={"record_hash": edited.compute_hash()})
    assert verify_chain(chain) == [
        "record 2 (run run-2) does not follow record 1 (run run-1): its previous_hash does not match"
    ]


def test_a_removed_record_is_found(chain):
    del chain[1]
    problems = verify_chain(chain)
    assert "record 2 (run run-2) is at position 1: records were removed, inserted or reordered before it" in problems


def test_reordered_records_are_found(chain):
    chain[1], chain[2] = chain[2], chain[1]
    assert any("run-2" in problem and "reordered" in problem for problem in verify_chain(chain))


def test_an_unsealed_record_is_found(make_record):
    assert verify_chain([make_record()])[0] == "record None (run run-1) is not sealed: it has no hash"


def test_a_sealed_record_cannot_be_sealed_again(chain):
    with pytest.raises(EvidenceError, match="already sealed"):
        seal(chain[0], None)


def test_a_record_of_another_environment_cannot_join_the_chain(chain, make_record):
    with pytest.raises(EvidenceError, match="environment 'prod', the chain for 'demo'"):
        seal(make_record(environment="prod"), chain[-1])
