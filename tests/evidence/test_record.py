"""The evidence record schema: what a producer must state, and the canonical form its hash covers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from dr_runbooks.evidence.record import DEFAULT_HIPAA, DnsOutcome, EvidenceRecord, Objective

T0 = datetime(2026, 11, 3, 14, 0, tzinfo=UTC)


def test_hipaa_paragraphs_default_to_those_of_the_kind(make_record):
    assert make_record(kind="restore-drill").hipaa == DEFAULT_HIPAA["restore-drill"]


def test_explicit_hipaa_paragraphs_are_kept(make_record):
    assert make_record(hipaa=("D", "A")).hipaa == ("A", "D")


def test_timestamps_without_a_zone_are_refused(make_record):
    with pytest.raises(ValidationError, match="timezone"):
        make_record(started_at=datetime(2026, 11, 3, 14, 0))


def test_timestamps_are_kept_in_utc(make_record):
    plus_two = timezone(timedelta(hours=2))
    record = make_record(started_at=T0.astimezone(plus_two))
    assert record.started_at.tzinfo == UTC and record.started_at == T0


def test_a_run_ending_before_it_started_is_refused(make_record):
    with pytest.raises(ValidationError, match="ended_at is before started_at"):
        make_record(ended_at=T0 - timedelta(seconds=1))


def test_unknown_fields_are_refused(make_record):
    with pytest.raises(ValidationError, match="Extra inputs"):
        make_record(colour="green")


def test_an_objective_over_its_target_is_not_met():
    assert not Objective(measured_seconds=901, target_seconds=900, how="x").met


def test_an_unmeasured_objective_is_not_met():
    assert not Objective(measured_seconds=None, target_seconds=900, how="x").met


def test_a_record_with_a_missed_rpo_did_not_pass(make_record):
    assert not make_record(rpo=Objective(measured_seconds=1000, target_seconds=900, how="x")).passed


def test_a_record_that_succeeded_and_met_its_targets_passed(make_record):
    assert make_record().passed


def test_the_hash_is_stable_across_a_json_round_trip(make_record):
    record = make_record()
    assert EvidenceRecord.model_validate_json(record.model_dump_json()).compute_hash() == record.compute_hash()


def test_the_hash_does_not_cover_the_record_hash_field(make_record):
    record = make_record()
    assert record.model_copy(update={"record_hash": "0" * 64}).compute_hash() == record.compute_hash()


def test_the_hash_changes_with_any_fact(make_record):
    assert make_record(downtime_seconds=121).compute_hash() != make_record().compute_hash()


def test_a_record_without_dns_hashes_as_records_sealed_before_the_field_existed(make_record):
    record = make_record()
    assert b'"dns"' not in record.canonical_json()


def test_the_hash_covers_where_dns_answered(make_record):
    dns = DnsOutcome(answer_region="us-west-1", confirmed=False, how="expected from the gates")
    confirmed = dns.model_copy(update={"confirmed": True})
    assert make_record(dns=dns).compute_hash() != make_record(dns=confirmed).compute_hash()
