"""cfn-lint reports no error on any synthesized template (warnings, like the pinned availability zones, are allowed)."""

from __future__ import annotations

from cfnlint.api import ManualArgs, lint_by_config
from stack_assembly import Estate


def test_cfn_lint_finds_no_error_in_any_template(estate: Estate) -> None:
    errors = []
    for region in estate.regions:  # one run per region, each template checked against the region it deploys to
        templates = sorted(str(path) for path in estate.outdir.glob(f"*-{region}.template.json"))
        matches = lint_by_config(ManualArgs(templates=templates, regions=[region]))
        errors += [str(match) for match in matches if match.rule.severity == "error"]
    assert errors == []
