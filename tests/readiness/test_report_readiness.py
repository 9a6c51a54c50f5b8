"""The report's readiness section: hours of a period found ready, not ready, or not evaluated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dr_runbooks.evidence.readiness import readiness_periods
from dr_runbooks.evidence.record import EvidenceRecord, Identity
from dr_runbooks.evidence.report import build_report, render_markdown

AS_OF = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _readiness(hours_ago: float, ready: bool, region: str = "us-west-1") -> EvidenceRecord:
    started = AS_OF - timedelta(hours=hours_ago)
    return EvidenceRecord(run_id=f"{started:%Y%m%dT%H%M%SZ}-readiness-{region}-abcdef", kind="readiness",
                          environment="demo", identity=Identity(caller_arn="arn:aws:sts::1:role/f", mfa_used=False),
                          started_at=started, ended_at=started + timedelta(seconds=3),
                          outcome="succeeded" if ready else "failed", sandbox=True)


def test_an_hour_counts_ready_only_when_every_evaluation_in_it_was_ready() -> None:
    chain = [_readiness(1.5, True), _readiness(1.5, True, "us-east-1"), _readiness(2.5, True),
             _readiness(2.5, False, "us-east-1")]
    week, _ = readiness_periods(chain, AS_OF)
    assert (week.hours, week.ready_hours, week.not_ready_hours, week.not_evaluated_hours) == (168, 1, 1, 166)


def test_hours_older_than_the_period_are_not_counted() -> None:
    week, month = readiness_periods([_readiness(24 * 10, True)], AS_OF)
    assert (week.ready_hours, month.ready_hours) == (0, 1)


def test_the_markdown_report_has_a_readiness_section() -> None:
    chain = [_readiness(1.5, True)]
    markdown = render_markdown(build_report(chain, chain, [], 0.9995, AS_OF))
    assert "## Readiness (hourly evaluation)" in markdown
    assert "| last 7 days | 168 | 1 | 0 | 167 |" in markdown
