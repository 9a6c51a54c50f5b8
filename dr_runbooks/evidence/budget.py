"""The availability budget: how much of the downtime the availability target allows the recorded runs have used.

At 99.95% a month allows 21.9 minutes of downtime and a year 263 minutes; a game day that takes the application
down spends some of it, and a drill must not be started when what is left cannot absorb it. Only measured downtime
from evidence records counts here (outages that left no record are not known to this module).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from dr_runbooks.config import MINUTES_PER_MONTH
from dr_runbooks.evidence.record import EvidenceRecord


class BudgetPeriod(BaseModel):
    model_config = ConfigDict(frozen=True)

    label: str
    budget_minutes: float
    used_minutes: float
    runs: int  # how many runs charged downtime to it

    @property
    def left_minutes(self) -> float:
        return self.budget_minutes - self.used_minutes

    @property
    def exhausted(self) -> bool:
        return self.left_minutes < 0


class AvailabilityBudget(BaseModel):
    model_config = ConfigDict(frozen=True)

    availability_target: float
    as_of: datetime
    month: BudgetPeriod
    year: BudgetPeriod


def availability_budget(
    records: Iterable[EvidenceRecord], availability_target: float, as_of: datetime
) -> AvailabilityBudget:
    """Downtime used in the calendar month and year of `as_of` (UTC) by runs that ended in them, up to `as_of`."""
    as_of = as_of.astimezone(UTC)
    monthly_budget = (1 - availability_target) * MINUTES_PER_MONTH
    in_year = [record for record in records if record.ended_at.year == as_of.year and record.ended_at <= as_of]
    in_month = [record for record in in_year if record.ended_at.month == as_of.month]

    def period(label: str, budget: float, runs: list[EvidenceRecord]) -> BudgetPeriod:
        charged = [record for record in runs if record.downtime_seconds]
        used = sum(record.downtime_seconds for record in charged) / 60
        return BudgetPeriod(label=label, budget_minutes=budget, used_minutes=used, runs=len(charged))

    return AvailabilityBudget(
        availability_target=availability_target,
        as_of=as_of,
        month=period(as_of.strftime("%B %Y"), monthly_budget, in_month),
        year=period(str(as_of.year), monthly_budget * 12, in_year),
    )
