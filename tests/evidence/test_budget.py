"""The availability budget: downtime of recorded runs charged to the month and year they ended in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dr_runbooks.evidence.budget import availability_budget

AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _ending(make_record, when: datetime, downtime: float):
    return make_record(started_at=when - timedelta(minutes=5), ended_at=when, downtime_seconds=downtime)


def test_at_9995_a_month_allows_21_9_minutes():
    assert availability_budget([], 0.9995, AS_OF).month.budget_minutes == pytest.approx(21.9, abs=0.05)


def test_downtime_this_month_is_charged_to_month_and_year(make_record):
    budget = availability_budget([_ending(make_record, datetime(2026, 11, 3, tzinfo=UTC), 300)], 0.9995, AS_OF)
    assert (budget.month.used_minutes, budget.year.used_minutes) == (5, 5)
    assert budget.month.left_minutes == pytest.approx(16.9, abs=0.05)


def test_downtime_of_an_earlier_month_is_charged_to_the_year_only(make_record):
    budget = availability_budget([_ending(make_record, datetime(2026, 10, 30, tzinfo=UTC), 300)], 0.9995, AS_OF)
    assert (budget.month.used_minutes, budget.year.used_minutes) == (0, 5)


def test_downtime_of_last_year_is_not_charged(make_record):
    budget = availability_budget([_ending(make_record, datetime(2025, 11, 3, tzinfo=UTC), 300)], 0.9995, AS_OF)
    assert budget.year.used_minutes == 0


def test_runs_without_downtime_are_not_counted_as_charged(make_record):
    budget = availability_budget([_ending(make_record, datetime(2026, 11, 3, tzinfo=UTC), 0)], 0.9995, AS_OF)
    assert budget.month.runs == 0


def test_a_month_over_budget_is_exhausted(make_record):
    budget = availability_budget([_ending(make_record, datetime(2026, 11, 3, tzinfo=UTC), 23 * 60)], 0.9995, AS_OF)
    assert budget.month.exhausted and not budget.year.exhausted
