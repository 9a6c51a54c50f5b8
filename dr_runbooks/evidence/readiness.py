"""The report's readiness section: of the hours of a period, how many an hourly readiness evaluation found the
estate ready, not ready, or did not evaluate (records of kind `readiness`, `dr_runbooks/readiness/scheduled.py`).

Each region evaluates every hour, so an hour may hold two records: it counts ready only when every evaluation in it
found the estate ready. An hour with none is "not evaluated", never assumed ready.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel

from dr_runbooks.evidence.record import EvidenceRecord

#: The periods the report shows, ending at the report's moment.
PERIODS = (("last 7 days", timedelta(days=7)), ("last 30 days", timedelta(days=30)))


class ReadinessPeriod(BaseModel):
    label: str
    hours: int
    ready_hours: int
    not_ready_hours: int

    @property
    def not_evaluated_hours(self) -> int:
        return self.hours - self.ready_hours - self.not_ready_hours


def readiness_periods(chain: Sequence[EvidenceRecord], as_of: datetime) -> tuple[ReadinessPeriod, ...]:
    ready_by_hour: dict[datetime, bool] = defaultdict(lambda: True)
    for record in chain:
        if record.kind == "readiness":
            hour = record.started_at.replace(minute=0, second=0, microsecond=0)
            ready_by_hour[hour] = ready_by_hour[hour] and record.outcome == "succeeded"
    periods = []
    for label, span in PERIODS:
        inside = [ready for hour, ready in ready_by_hour.items() if as_of - span <= hour < as_of]
        periods.append(ReadinessPeriod(label=label, hours=int(span.total_seconds() // 3600),
                                       ready_hours=sum(inside), not_ready_hours=len(inside) - sum(inside)))
    return tuple(periods)
