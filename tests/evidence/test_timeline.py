"""The timeline picture's geometry: bars placed and scaled on the run's time axis."""

from __future__ import annotations

from datetime import timedelta

from dr_runbooks.evidence.record import Step
from dr_runbooks.evidence.timeline import LABEL_WIDTH, WIDTH, build_timeline


def test_one_bar_per_step_in_order(make_record):
    assert [bar.label for bar in build_timeline(make_record()).bars] == ["promote-secondary", "shift-traffic"]


def test_a_step_starting_mid_run_starts_mid_axis(make_record):
    # The run lasts 5 min; shift-traffic starts at +2 min.
    bar = build_timeline(make_record()).bars[1]
    assert bar.x - LABEL_WIDTH == (WIDTH - LABEL_WIDTH - 10) * 2 / 5


def test_concurrent_steps_overlap_on_the_axis(make_record):
    record = make_record()
    start = record.started_at
    steps = (
        Step(name="a", started_at=start, ended_at=start + timedelta(minutes=3), outcome="succeeded"),
        Step(name="b", started_at=start, ended_at=start + timedelta(minutes=3), outcome="failed"),
    )
    bars = build_timeline(make_record(timeline=steps)).bars
    assert bars[0].x == bars[1].x and bars[0].y != bars[1].y
    assert bars[1].colour != bars[0].colour


def test_a_run_without_steps_draws_only_the_axis(make_record):
    timeline = build_timeline(make_record(timeline=()))
    assert timeline.bars == () and len(timeline.ticks) > 1
