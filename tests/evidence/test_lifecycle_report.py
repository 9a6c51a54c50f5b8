"""The report's records-lifecycle section (45 CFR 164.310(d)(2)(i), 164.316(b)(2)), read from the chain."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from dr_runbooks.evidence.chain import seal
from dr_runbooks.evidence.record import Verification
from dr_runbooks.evidence.report import build_report, render_html, render_markdown

AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _lifecycle(make_record, run_id: str, kind: str, facts: dict) -> dict:
    return dict(run_id=run_id, kind=kind, rto=None, rpo=None, downtime_seconds=0, from_region=None,
                verifications=(Verification(what=kind, how="test", result="passed", detail=json.dumps(facts)),))


def _chain(make_record, *specs):
    sealed = []
    for run_id, kind, facts in specs:
        sealed.append(seal(make_record(**_lifecycle(make_record, run_id, kind, facts)), sealed[-1] if sealed else None))
    return sealed


def _section(markdown: str) -> str:
    return markdown.split("## Records lifecycle", 1)[1]


def test_the_report_names_the_last_sync_the_holds_in_force_and_each_disposals_certificate(make_record):
    hold = {"patient_id": "pt-000007", "reason": "subpoena 17", "by": "arn:alice", "at": "2026-11-02T00:00:00"}
    chain = _chain(make_record,
                   ("sync-1", "retention-sync", {"patients_moved": 3, "versions_extended": 12}),
                   ("hold-1", "legal-hold", hold),
                   ("hold-2", "legal-hold", {**hold, "patient_id": "pt-000008"}),
                   ("release-1", "legal-release", {**hold, "patient_id": "pt-000008"}),
                   ("dispose-1", "disposal", {"patients": ["pt-000001"], "chart_versions": 4, "keys_sha256": "ab" * 32,
                                              "backups_hold_them_until": "2026-12-25T00:00:00+00:00"}))

    section = _section(render_markdown(build_report(chain, chain, [], 0.9995, AS_OF)))

    assert "164.310(d)(2)(i)" in section and "164.316(b)(2)" in section
    assert "run `sync-1`" in section and "3 patients moved, 12 chart versions extended" in section
    assert "Legal holds in force: 1" in section and "`pt-000007`: subpoena 17" in section
    assert "pt-000008" not in section
    assert "run `dispose-1` (certified" in section and "ab" * 32 in section and "2026-12-25" in section


def test_a_chain_without_lifecycle_runs_says_so(sealed_chain):
    report = build_report(sealed_chain, sealed_chain, [], 0.9995, AS_OF)
    assert "No lifecycle run in the evidence chain" in _section(render_markdown(report))
    assert "No lifecycle run in the evidence chain" in render_html(report)
