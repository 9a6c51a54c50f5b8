"""Report rendering: what an auditor must find in the Markdown, the HTML and the JSON."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from dr_runbooks.evidence.record import AwsCall
from dr_runbooks.evidence.report import build_report, render_html, render_json, render_markdown, write_report

AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def report(sealed_chain):
    return build_report(sealed_chain, sealed_chain, [], 0.9995, AS_OF)


def _section(markdown: str, heading: str) -> str:
    """The text under `heading` up to the next heading of the same level."""
    level = heading.split(" ", 1)[0]
    return markdown.split(heading, 1)[1].split(f"\n{level} ", 1)[0]


def test_a_report_without_records_is_refused(sealed_chain):
    with pytest.raises(ValueError, match="at least one evidence record"):
        build_report(sealed_chain, [], [], 0.9995, AS_OF)


def test_markdown_states_each_objective_against_its_target(report):
    markdown = render_markdown(report)
    assert "| RTO | 4.0 min | 15.0 min | yes | first successful read in the DR region |" in markdown
    assert "| RPO | 20.0 min | 15.0 min | NO | newest restored canary row |" in markdown


def test_markdown_says_when_an_objective_was_not_measured(report):
    assert "| RTO | not measured by this kind of run |" in _section(render_markdown(report), "## Run restore-1")


def test_markdown_names_the_identity_and_its_mfa(report):
    markdown = render_markdown(report)
    assert "`arn:aws:sts::123456789012:assumed-role/ehr-dr-demo-dr-operator/alice`" in markdown
    assert "MFA: **yes**" in markdown


def test_markdown_lists_what_was_verified_and_how(report):
    assert "| chart files | SHA-256 of each restored file against its scan row | failed | 50 | 1 |" in render_markdown(
        report
    )


def test_markdown_lists_errors_with_their_step(report):
    assert "- `validate-charts`: 1 chart file does not match its stored checksum" in render_markdown(report)


def test_a_sandbox_run_is_reported_as_saying_nothing_about_aws_timings(report):
    assert "timings say nothing about AWS timings" in render_markdown(report)


def test_an_aws_run_has_no_sandbox_notice(make_record):
    record = make_record(sandbox=False)
    assert "Sandbox run" not in render_markdown(build_report([record], [record], [], 0.9995, AS_OF))


def test_the_budget_shows_downtime_used_and_left_this_month(report):
    assert "| November 2026 | 21.9 min | 2.0 min | 19.9 min | 1 |" in render_markdown(report)


def test_every_hipaa_paragraph_has_a_section(report):
    markdown = render_markdown(report)
    assert re.findall(r"^### \(([A-E])\)", markdown, flags=re.MULTILINE) == ["A", "B", "C", "D", "E"]


def test_a_hipaa_paragraph_names_the_runs_that_cover_it(report):
    section = _section(render_markdown(report), "### (A) Data backup plan")
    assert "run `restore-1` (restore-drill, 2026-11-03, FAILED)" in section


def test_a_hipaa_paragraph_without_evidence_says_so_plainly(make_record):
    record = make_record(kind="verify-replication")
    section = _section(render_markdown(build_report([record], [record], [], 0.9995, AS_OF)), "### (B)")
    assert "No evidence in this report covers this paragraph." in section


def test_a_broken_chain_is_reported_first(sealed_chain):
    report = build_report(sealed_chain, sealed_chain, ["record 1 (run restore-1) was edited"], 0.9995, AS_OF)
    markdown = render_markdown(report)
    assert markdown.index("The evidence chain is BROKEN") < markdown.index("## Runs")
    assert "- record 1 (run restore-1) was edited" in markdown


def test_html_is_self_contained(report):
    html = render_html(report)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "<script" not in html and "<link" not in html


def test_html_escapes_recorded_text(make_record):
    record = make_record(errors=({"message": "<img src=x onerror=alert(1)>"},))
    html = render_html(build_report([record], [record], [], 0.9995, AS_OF))
    assert "<img src=x" not in html and "&lt;img src=x" in html


def test_html_draws_one_timeline_bar_per_step(report):
    assert render_html(report).count('<rect class="step') == 4


def test_json_keeps_the_records_as_stored(report, sealed_chain):
    document = json.loads(render_json(report))
    assert [record["record_hash"] for record in document["records"]] == [r.record_hash for r in sealed_chain]
    assert document["chain"] == {"length": 2, "intact": True, "problems": []}


def test_the_three_files_are_written_side_by_side(report, tmp_path):
    files = write_report(report, tmp_path / "reports")
    assert sorted(path.name for path in (tmp_path / "reports").iterdir()) == [
        "demo-records-0-1.html", "demo-records-0-1.json", "demo-records-0-1.md"
    ]
    assert files.html.read_text().startswith("<!DOCTYPE html>")


def test_a_paragraph_covered_only_by_failed_runs_says_the_plan_is_not_shown_to_work(report):
    markdown = render_markdown(report)
    assert "None of these runs passed" in _section(markdown, "### (A) Data backup plan")
    assert "None of these runs passed" not in _section(markdown, "### (B) Disaster recovery plan")


def test_repeated_calls_of_a_step_are_one_line_with_their_count(make_record):
    step = make_record().timeline[0]
    reads = tuple(AwsCall(service="s3", operation="GetObject", region="us-west-1") for _ in range(50))
    record = make_record(timeline=(step.model_copy(update={"aws_calls": reads}),))
    markdown = render_markdown(build_report([record], [record], [], 0.9995, AS_OF))
    assert "s3:GetObject (us-west-1) x50" in markdown
    assert markdown.count("GetObject") == 1


def test_a_failed_call_keeps_its_error_in_the_summary(make_record):
    step = make_record().timeline[0]
    failed = AwsCall(service="rds", operation="SwitchoverGlobalCluster", region="us-west-1", error="Throttling")
    record = make_record(timeline=(step.model_copy(update={"aws_calls": (failed,)}),))
    html = render_html(build_report([record], [record], [], 0.9995, AS_OF))
    assert '<span class="bad">rds:SwitchoverGlobalCluster (us-west-1) failed: Throttling</span>' in html
