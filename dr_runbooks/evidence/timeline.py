"""The geometry of a run's timeline picture: one bar per step on a shared time axis, as numbers for an SVG template.

Computed here, not in the template, so the arithmetic is tested and the template only draws. Steps that ran
concurrently overlap on the axis, which is the point of the picture: the run's wall time is its critical path.
"""

from __future__ import annotations

from dataclasses import dataclass

from dr_runbooks.evidence.record import EvidenceRecord

WIDTH = 760
LABEL_WIDTH = 200
ROW_HEIGHT = 22
AXIS_HEIGHT = 28
TICKS = 5

OUTCOME_COLOURS = {"succeeded": "#2e7d32", "failed": "#c62828", "skipped": "#9e9e9e", "aborted": "#ef6c00"}


@dataclass(frozen=True)
class Bar:
    label: str
    outcome: str
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class Timeline:
    width: int
    height: int
    label_width: int
    axis_y: float
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


def build_timeline(record: EvidenceRecord) -> Timeline:
    """Bars for the steps of `record`, scaled so the whole run spans the drawing width."""
    span = max(record.duration_seconds, *(step.duration_seconds for step in record.timeline), 1e-3)
    scale = (WIDTH - LABEL_WIDTH - 10) / span
    bars = []
    for row, step in enumerate(record.timeline):
        offset = max((step.started_at - record.started_at).total_seconds(), 0.0)
        bars.append(
            Bar(
                label=step.name,
                outcome=step.outcome,
                x=LABEL_WIDTH + offset * scale,
                y=row * ROW_HEIGHT + 4,
                width=max(step.duration_seconds * scale, 2.0),
                height=ROW_HEIGHT - 8,
                colour=OUTCOME_COLOURS[step.outcome],
                title=f"{step.name}: {step.outcome}, {_seconds(step.duration_seconds)} from +{_seconds(offset)}",
            )
        )
    axis_y = len(bars) * ROW_HEIGHT + 4
    ticks = tuple(
        Tick(x=LABEL_WIDTH + span * fraction / TICKS * scale, label=_seconds(span * fraction / TICKS))
        for fraction in range(TICKS + 1)
    )
    return Timeline(
        width=WIDTH,
        height=int(axis_y + AXIS_HEIGHT),
        label_width=LABEL_WIDTH,
        axis_y=axis_y,
        bars=tuple(bars),
        ticks=ticks,
    )
