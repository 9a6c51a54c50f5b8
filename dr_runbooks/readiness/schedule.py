"""How long an EventBridge Scheduler or AWS Backup cron may leave between two runs: what "within its schedule" means.

A bound, not a calendar: it is the longest gap the expression's fields allow, rounded up (a month counts 31 days, an
n-th weekday of a month one more week), so a run that kept its schedule is never reported late. The cron syntax is
AWS's (`cron(minutes hours day-of-month month day-of-week year)`, EventBridge Scheduler User Guide, "Schedule types":
cron-based schedules); the minutes and year fields do not change the bound of the expressions the estate uses.
"""

from __future__ import annotations

from datetime import timedelta

_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}


def _cyclic_gap(values: list[int], cycle: int) -> int:
    """The longest distance between consecutive members of `values` on a cycle of `cycle` (one member: `cycle`)."""
    ordered = sorted(set(values))
    return max((later - earlier) % cycle or cycle
               for earlier, later in zip(ordered, [*ordered[1:], ordered[0]], strict=True))


def _listed(field: str, names: dict[str, int] | None = None) -> list[int] | None:
    """The values of a plain list field (`1,4,7,10`, `MON,THU`), or None for anything else (ranges, steps, `#`)."""
    values = []
    for part in field.split(","):
        key = part.upper()
        if names and key in names:
            values.append(names[key])
        elif part.isdigit():
            values.append(int(part))
        else:
            return None
    return values


def longest_gap(expression: str) -> timedelta:
    """The longest time `expression` (`cron(...)` or `rate(n unit)`) leaves between two runs, as a bound."""
    body = expression.strip()
    if body.startswith("rate("):
        amount, unit = body.removeprefix("rate(").removesuffix(")").split()
        return timedelta(**{unit if unit.endswith("s") else f"{unit}s": int(amount)})
    _minutes, hours, day_of_month, month, day_of_week, _year = body.removeprefix("cron(").removesuffix(")").split()
    nth_weekday = timedelta(days=7) if "#" in day_of_week or "L" in day_of_week else timedelta(0)
    if month != "*":
        months = _listed(month)
        return timedelta(days=31 * (_cyclic_gap(months, 12) if months else 12)) + nth_weekday
    if day_of_month not in ("*", "?") or nth_weekday:
        return timedelta(days=31) + nth_weekday
    if day_of_week not in ("*", "?"):
        days = _listed(day_of_week, _DAYS)
        return timedelta(days=_cyclic_gap(days, 7) if days else 7)
    if hours == "*":
        return timedelta(hours=1)
    if hours.startswith("*/"):
        return timedelta(hours=int(hours[2:]))
    return timedelta(days=1)
