"""The retention date of a patient's charts: from the records (last visit, birth date), never the age of a file."""

from __future__ import annotations

from datetime import date

from dr_runbooks.lifecycle.policy import RetentionPolicy

POLICY = RetentionPolicy(retention_years=7, minor_age_of_majority=18, minor_retention_years=7)


def test_an_adults_charts_are_kept_retention_years_after_the_last_visit():
    assert POLICY.retain_until(date(1970, 5, 1), date(2020, 3, 15)) == date(2027, 3, 15)


def test_a_visit_moves_the_retention_date_with_it():
    first = POLICY.retain_until(date(1970, 5, 1), date(2019, 3, 15))
    again = POLICY.retain_until(date(1970, 5, 1), date(2025, 6, 1))
    assert (first, again) == (date(2026, 3, 15), date(2032, 6, 1))


def test_a_minors_charts_are_kept_until_majority_plus_the_minors_years_when_that_is_later():
    assert POLICY.retain_until(date(2015, 8, 20), date(2020, 1, 10)) == date(2040, 8, 20)


def test_a_minor_seen_late_in_childhood_keeps_the_later_visit_date():
    young = RetentionPolicy(retention_years=7, minor_age_of_majority=18, minor_retention_years=2)
    assert young.retain_until(date(2002, 8, 20), date(2020, 1, 10)) == date(2027, 1, 10)


def test_a_leap_day_visit_is_kept_until_the_first_of_march_never_a_day_early():
    assert POLICY.retain_until(date(1970, 5, 1), date(2024, 2, 29)) == date(2031, 3, 1)
