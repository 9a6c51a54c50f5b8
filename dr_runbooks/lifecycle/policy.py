"""How long a patient's charts are kept: from the records, never from the age of a file.

Health records are kept `retention_years` after the patient's last visit; a minor's are kept at least until the age
of majority plus `minor_retention_years`, whichever is later. The date is a pure function of the patient's birth
date and last visit, so the sandbox seed, `drctl retention sync` and `drctl dispose` all compute the same one.

The clock is injected (`Clock`): a command reads `now()` from its caller, so a test can stand in the future without
touching the system time. S3 Object Lock keeps its own clock: a disposal is also refused while any version's
retain-until is in the future, whatever the injected clock says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from dr_runbooks.config import DeploymentConfig
from dr_runbooks.topology import RecordsLifecycle

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def _years_after(day: date, years: int) -> date:
    """The same calendar day `years` later; 29 February becomes 1 March (never a day early)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)


@dataclass(frozen=True)
class RetentionPolicy:
    retention_years: int
    minor_age_of_majority: int
    minor_retention_years: int

    @classmethod
    def of(cls, source: DeploymentConfig | RecordsLifecycle) -> RetentionPolicy:
        """From the deployment config (the sandbox's seed) or the topology's copy of it (the runbooks)."""
        return cls(source.retention_years, source.minor_age_of_majority, source.minor_retention_years)

    def retain_until(self, birth_date: date, last_visit: date) -> date:
        """The day from which the patient's charts may be disposed of."""
        after_visit = _years_after(last_visit, self.retention_years)
        if _years_after(birth_date, self.minor_age_of_majority) <= last_visit:
            return after_visit  # an adult at the last visit
        return max(after_visit, _years_after(birth_date, self.minor_age_of_majority + self.minor_retention_years))


def start_of(day: date) -> datetime:
    """The instant Object Lock's retain-until is set to for a retention date: midnight UTC of that day."""
    return datetime.combine(day, time(), UTC)
