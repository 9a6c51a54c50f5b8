"""The compliance gates: no unacknowledged cdk-nag finding or CDK warning, and every acknowledgment earns its place."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from stack_assembly import Estate

from stacks.app import build_app, cdk_json_context
from stacks.compliance_acknowledgments import ACKNOWLEDGMENTS, Acknowledgment


def _acknowledged(estate: Estate) -> set[tuple[str, str]]:
    """(rule id, reason) of every acknowledgment recorded in the assembly's metadata."""
    found = set()
    for path in estate.outdir.glob("*.metadata.json"):
        for entries in json.loads(path.read_text()).values():
            for entry in entries:
                if entry["type"] == "aws:cdk:acknowledged-rules":
                    found |= {(rule.split("::", 1)[-1], reason) for rule, reason in entry["data"].items()}
    return found


def _metadata_entries(estate: Estate) -> list[dict[str, Any]]:
    return [entry for path in estate.outdir.glob("*.metadata.json")
            for entries in json.loads(path.read_text()).values() for entry in entries]


def test_estate_synth_reports_no_violation(estate: Estate) -> None:
    """cdk-nag lists a pack in the report only when it finds something; the next test shows they run."""
    report = json.loads((estate.outdir / "validation-report.json").read_text())
    assert [v for plugin in report["pluginReports"] for v in plugin["violations"]] == []


def test_an_unacknowledged_finding_fails_the_synth_in_both_packs(tmp_path: Path) -> None:
    app = build_app(cdk_json_context(), outdir=str(tmp_path))
    planted = cdk.Stack(app, "planted", env=cdk.Environment(account="123456789012", region="us-east-1"))
    s3.Bucket(planted, "Unprotected")
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    violations = {plugin["pluginName"]: plugin["violations"] for plugin in report["pluginReports"]}
    assert violations["AwsSolutions"] and violations["HIPAA.Security"]
    paths = {c["constructPath"] for plugin in violations.values() for v in plugin for c in v["violatingConstructs"]}
    assert paths == {"planted/Unprotected/Resource"}


def test_synth_leaves_no_unacknowledged_warning_or_error(estate: Estate) -> None:
    problems = [entry for entry in _metadata_entries(estate) if entry["type"] in ("aws:cdk:warning", "aws:cdk:error")]
    assert problems == []


def test_every_acknowledgment_gives_a_specific_reason() -> None:
    for entry in ACKNOWLEDGMENTS:
        assert len(entry.reason) >= 60, f"{entry.rule}: say why, specifically"
        assert "not needed" not in entry.reason.lower()


def _pattern(entry: Acknowledgment) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{\w+\\\}", ".+", re.escape(entry.rule)))


def test_every_acknowledgment_is_used(estate: Estate) -> None:
    acknowledged = _acknowledged(estate)
    unused = [entry.rule for entry in ACKNOWLEDGMENTS
              if not any(reason == entry.reason and _pattern(entry).fullmatch(rule) for rule, reason in acknowledged)]
    assert unused == []
