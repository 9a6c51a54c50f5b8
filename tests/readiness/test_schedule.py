"""`longest_gap`: the bound "within its schedule" uses, for the expressions the estate schedules."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dr_runbooks.readiness.schedule import longest_gap


@pytest.mark.parametrize(("expression", "gap"), [
    ("cron(0 * * * ? *)", timedelta(hours=1)),
    ("cron(0 */6 * * ? *)", timedelta(hours=6)),
    ("cron(0 5 * * ? *)", timedelta(days=1)),
    ("cron(0 6 ? * SUN *)", timedelta(days=7)),
    ("cron(0 6 ? * MON,THU *)", timedelta(days=4)),
    ("cron(0 15 ? 1,4,7,10 TUE#2 *)", timedelta(days=3 * 31 + 7)),
    ("cron(0 3 1 * ? *)", timedelta(days=31)),
    ("rate(1 hour)", timedelta(hours=1)),
    ("rate(30 minutes)", timedelta(minutes=30)),
])
def test_the_longest_gap_of_a_schedule_bounds_it(expression: str, gap: timedelta) -> None:
    assert longest_gap(expression) == gap
