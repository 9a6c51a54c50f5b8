"""The peers' compliance suites, run on synthesized cloud assemblies: checkov, cfn-guard with AWS's HIPAA Security
rule set, and parliament on every IAM and resource policy. Each run returns what it checked and what it found, every
finding located by stack and construct path, so it can be held against `stacks.compliance_acknowledgments`.

A plain module (not conftest) so the test module and a hand run (`python tests/stacks/peer_suites.py cdk.out`) share it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parliament import analyze_policy_string

# jsii starts node when aws_cdk is first imported (by the acknowledgments): silence node 20's end-of-life banner first.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from stacks.compliance_acknowledgments import PEER_ACKNOWLEDGMENTS, PeerAcknowledgment

ROOT = Path(__file__).resolve().parents[2]
GUARD_RULES = Path(__file__).resolve().parent / "guard_rules"
#: checkov lives in a venv of its own (it pins an older boto3 than the project's): see checkov-requirements.txt here.
CHECKOV = Path(os.environ.get("CHECKOV", ROOT / ".venv" / "checkov" / "bin" / "checkov"))
#: The cfn-guard build inside the pinned npm package (package.json) for this OS and CPU (bin/<ubuntu|macos>/<cpu>).
CFN_GUARD = (ROOT / "node_modules/@cdklabs/cdk-validator-cfnguard/bin"
             / ("macos" if sys.platform == "darwin" else "ubuntu")
             / os.uname().machine.replace("arm64", "aarch64") / "cfn-guard")
#: A role's trust policy has no Resource, which parliament (an identity-policy linter) reports as MALFORMED and then
#: checks nothing else of it: trust policies are left to cdk-nag and the stack tests (tests/stacks/test_access.py).
TRUST_POLICY = "AssumeRolePolicyDocument"


@dataclass(frozen=True)
class Finding:
    """One failed check on one resource (`path`: its construct path below the stack; "" for a whole template)."""

    suite: str
    check: str
    stack: str
    path: str
    detail: str

    def __str__(self) -> str:
        return f"{self.suite} {self.check} {self.stack}/{self.path}: {self.detail}"


@dataclass(frozen=True)
class SuiteRun:
    """What one suite checked on a set of templates: `checks` evaluations of which `passed` passed.

    `evaluated` counts the checks per stack the suite reported on (a stack none of its checks applies to is absent).
    """

    suite: str
    templates: int
    evaluated: dict[str, int]
    checks: int
    passed: int
    findings: tuple[Finding, ...]
    seconds: float

    @property
    def failed(self) -> int:
        return self.checks - self.passed


def templates_of(outdir: Path) -> list[Path]:
    return sorted(outdir.glob("*.template.json"))


def _stack(template: Path) -> str:
    return template.name.removesuffix(".template.json")


def construct_paths(template: Path) -> dict[str, str]:
    """Logical id -> construct path below the stack, from the assembly's metadata file beside the template."""
    metadata = json.loads(template.with_name(f"{_stack(template)}.metadata.json").read_text())
    prefix = f"/{_stack(template)}/"
    return {entry["data"]: path.removeprefix(prefix) for path, entries in metadata.items()
            for entry in entries if entry["type"] == "aws:cdk:logicalId"}


def _timed(run: Callable[[], tuple[dict[str, int], int, list[Finding]]], suite: str,
           templates: Sequence[Path]) -> SuiteRun:
    started = time.monotonic()
    evaluated, passed, findings = run()
    return SuiteRun(suite, len(templates), evaluated, sum(evaluated.values()), passed, tuple(findings),
                    round(time.monotonic() - started, 1))


# --- checkov ---

def run_checkov(templates: Sequence[Path]) -> SuiteRun:
    """checkov's CloudFormation checks, offline (`--skip-download`: without it checkov calls its vendor's service)."""
    def run() -> tuple[dict[str, int], int, list[Finding]]:
        if not CHECKOV.exists():
            raise RuntimeError(f"{CHECKOV} missing: python3 -m venv .venv/checkov && "
                               ".venv/checkov/bin/pip install -r tests/stacks/checkov-requirements.txt")
        args = [str(CHECKOV), "--framework", "cloudformation", "--skip-download", "--compact",
                "--output", "json", *(arg for template in templates for arg in ("--file", str(template)))]
        result = subprocess.run(args, capture_output=True, text=True, check=False, timeout=600)
        if result.returncode not in (0, 1) or not result.stdout.strip():
            raise RuntimeError(f"checkov failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
        reports = [r for r in _as_list(json.loads(result.stdout)) if r.get("check_type") == "cloudformation"]
        if not reports:  # no check applied to any resource: checkov prints a bare summary of zeros
            return {}, 0, []
        (report,) = reports
        if report["summary"]["parsing_errors"]:
            raise RuntimeError(f"checkov could not parse {report['summary']['parsing_errors']} template(s)")
        paths = {_stack(template): construct_paths(template) for template in templates}
        evaluated: dict[str, int] = {}
        for checked in (*report["results"]["passed_checks"], *report["results"]["failed_checks"]):
            stack = _stack(Path(checked["file_abs_path"]))
            evaluated[stack] = evaluated.get(stack, 0) + 1
        findings = []
        for failed in report["results"]["failed_checks"]:
            stack = _stack(Path(failed["file_abs_path"]))
            logical_id = failed["resource"].split(".", 1)[1]
            findings.append(Finding("checkov", failed["check_id"], stack, paths[stack][logical_id],
                                    failed["check_name"]))
        return evaluated, len(report["results"]["passed_checks"]), findings
    return _timed(run, "checkov", templates)


def _as_list(report: Any) -> list[dict[str, Any]]:
    return report if isinstance(report, list) else [report]


# --- cfn-guard ---

def guard_rule_files() -> list[Path]:
    """The rule files AWS's HIPAA Security mapping lists (the vendored copy of the registry)."""
    mapping = json.loads((GUARD_RULES / "rule_set_hipaa_security.json").read_text())
    return [GUARD_RULES / entry["guardFilePath"] for entry in mapping["mappings"]]


def run_cfn_guard(templates: Sequence[Path]) -> SuiteRun:
    """Every rule of the HIPAA Security rule set on every template; a rule counts once per template it applies to."""
    def run() -> tuple[dict[str, int], int, list[Finding]]:
        args = [str(CFN_GUARD), "validate", "--structured", "--show-summary", "none", "--output-format", "json",
                *(arg for rules in guard_rule_files() for arg in ("--rules", str(rules))),
                *(arg for template in templates for arg in ("--data", str(template)))]
        result = subprocess.run(args, capture_output=True, text=True, check=False, timeout=600)
        if result.returncode not in (0, 19):  # 19: some rule failed
            raise RuntimeError(f"cfn-guard failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
        evaluated: dict[str, int] = {}
        passed = 0
        findings = []
        for report in json.loads(result.stdout):
            template = Path(report["name"])
            paths = construct_paths(template)
            if applied := len(report["compliant"]) + len(report["not_compliant"]):
                evaluated[_stack(template)] = applied
            passed += len(report["compliant"])
            for failure in report["not_compliant"]:
                rule = failure["Rule"]
                logical_ids = sorted(set(_guard_resources(rule))) or [None]
                findings += [Finding("cfn-guard", rule["name"], _stack(template),
                                     paths[logical_id] if logical_id else "", _guard_message(rule))
                             for logical_id in logical_ids]
        return evaluated, passed, findings
    return _timed(run, "cfn-guard", templates)


def _guard_resources(clause: Any) -> Iterator[str]:
    """Logical ids of the resources a failed rule's clauses point at (`path`: /Resources/<id>/...)."""
    if isinstance(clause, dict):
        for key, value in clause.items():
            if key == "path" and isinstance(value, str) and (match := re.match(r"/Resources/([^/]+)", value)):
                yield match.group(1)
            else:
                yield from _guard_resources(value)
    elif isinstance(clause, list):
        for item in clause:
            yield from _guard_resources(item)


def _guard_message(rule: dict[str, Any]) -> str:
    text = json.dumps(rule)
    match = re.search(r"Violation: ([^\\]+)", text)
    return match.group(1).strip() if match else rule["name"]


# --- parliament ---

#: The ARN of a resource another part of a policy points at (Ref / Fn::GetAtt ... Arn), by resource type.
_ARNS = {
    "AWS::S3::Bucket": "arn:aws:s3:::{name}",
    "AWS::Lambda::Function": "arn:aws:lambda:{region}:{account}:function:{name}",
    "AWS::Logs::LogGroup": "arn:aws:logs:{region}:{account}:log-group:{name}:*",
    "AWS::SNS::Topic": "arn:aws:sns:{region}:{account}:{name}",
    "AWS::KMS::Key": "arn:aws:kms:{region}:{account}:key/{name}",
    "AWS::IAM::Role": "arn:aws:iam::{account}:role/{name}",
}
_NAMES = ("BucketName", "FunctionName", "LogGroupName", "TopicName", "RoleName")


class _Resolver:
    """CloudFormation intrinsics of a policy resolved to the strings they deploy as, so parliament sees ARNs."""

    def __init__(self, templates: Sequence[Path]) -> None:
        self.templates = {_stack(template): json.loads(template.read_text()) for template in templates}
        #: stack -> (account, region), from the cloud assembly's manifest (environment "aws://<account>/<region>").
        manifests = {template.parent: json.loads((template.parent / "manifest.json").read_text())
                     for template in templates}
        self.environments = {
            _stack(template): tuple(manifests[template.parent]["artifacts"][_stack(template)]["environment"]
                                    .removeprefix("aws://").split("/"))
            for template in templates
        }
        self.exports = {output["Export"]["Name"]: (stack, output["Value"])
                        for stack, body in self.templates.items()
                        for output in body.get("Outputs", {}).values() if "Export" in output}

    def resolve(self, value: Any, stack: str) -> Any:
        if isinstance(value, list):
            return [self.resolve(item, stack) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._pseudo(argument, stack) if argument.startswith("AWS::") else self._arn(stack, argument)
            if key == "Fn::GetAtt":
                if argument[1] != "Arn":
                    raise ValueError(f"{stack}: Fn::GetAtt {argument} in a policy: teach peer_suites its value")
                return self._arn(stack, argument[0])
            if key == "Fn::Join":
                return argument[0].join(self.resolve(part, stack) for part in argument[1])
            if key == "Fn::ImportValue":
                exporter, exported = self.exports[argument]
                return self.resolve(exported, exporter)
            if key.startswith("Fn::"):
                raise ValueError(f"{stack}: {key} in a policy: teach peer_suites its value")
        return {key: self.resolve(item, stack) for key, item in value.items()}

    def _pseudo(self, name: str, stack: str) -> str:
        account, region = self.environments[stack]
        return {"AWS::Partition": "aws", "AWS::Region": region, "AWS::URLSuffix": "amazonaws.com",
                "AWS::AccountId": account}[name]

    def _arn(self, stack: str, logical_id: str) -> str:
        resource = self.templates[stack]["Resources"][logical_id]
        properties = resource.get("Properties", {})
        name = next((properties[key] for key in _NAMES if isinstance(properties.get(key), str)), logical_id)
        if resource["Type"] not in _ARNS:
            raise ValueError(f"{stack}: a policy names a {resource['Type']}: teach peer_suites its ARN")
        account, region = self.environments[stack]
        return _ARNS[resource["Type"]].format(name=name, region=region, account=account)


def policies(properties: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """(property path, document) of every policy document in a resource's properties (anything with a Statement)."""
    if isinstance(properties, dict):
        if "Statement" in properties:
            yield path, properties
            return
        for key, value in properties.items():
            yield from policies(value, (*path, key))
    elif isinstance(properties, list):
        for index, value in enumerate(properties):
            yield from policies(value, (*path, str(index)))


def run_parliament(templates: Sequence[Path]) -> SuiteRun:
    """parliament's own auditors on every identity and resource policy (trust policies aside, see TRUST_POLICY).

    A check is one policy linted; it passes with no finding. Findings that name several actions become one per action.
    """
    def run() -> tuple[dict[str, int], int, list[Finding]]:
        resolver = _Resolver(templates)
        evaluated: dict[str, int] = {}
        passed = 0
        findings: list[Finding] = []
        for template in templates:
            stack, paths = _stack(template), construct_paths(template)
            for logical_id, resource in resolver.templates[stack]["Resources"].items():
                for where, document in policies(resource.get("Properties", {})):
                    if where[0] == TRUST_POLICY:
                        continue
                    evaluated[stack] = evaluated.get(stack, 0) + 1
                    policy = analyze_policy_string(json.dumps(resolver.resolve(document, stack)))
                    found = [Finding("parliament", f"{finding.issue}[{item}]", stack, paths[logical_id],
                                     "/".join(where)) for finding in policy.findings for item in _items(finding.detail)]
                    passed += not found
                    findings += found
        return evaluated, passed, findings
    return _timed(run, "parliament", templates)


def _items(detail: Any) -> list[str]:
    if isinstance(detail, list):
        return [item["action"] if isinstance(item, dict) else str(item) for item in detail]
    return [str(detail)]


def run_all(templates: Sequence[Path]) -> list[SuiteRun]:
    return [run_checkov(templates), run_cfn_guard(templates), run_parliament(templates)]


def acknowledgment_of(finding: Finding) -> PeerAcknowledgment | None:
    return next((entry for entry in PEER_ACKNOWLEDGMENTS if entry.matches(finding.suite, finding.check, finding.path)),
                None)


if __name__ == "__main__":  # by hand: python tests/stacks/peer_suites.py <cdk.out> [<another cloud assembly> ...]
    for outdir in sys.argv[1:]:
        print(outdir)
        for suite in run_all(templates_of(Path(outdir))):
            open_findings = [finding for finding in suite.findings if acknowledgment_of(finding) is None]
            print(f"  {suite.suite}: {suite.templates} templates, {suite.checks} checks, {suite.passed} passed, "
                  f"{suite.failed} failed ({len(suite.findings)} findings, {len(open_findings)} unacknowledged), "
                  f"{suite.seconds} s")
            for finding in open_findings:
                print(f"    unacknowledged: {finding}")
