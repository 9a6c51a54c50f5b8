"""`drctl evaluate --runbook <drill or lifecycle plan>` on the sandbox: the declared calls of the drills and the
retention sync are simulated against the policies the stacks deploy (the sandbox's IAM), and a statement removed
from a role is found, naming the step and the action."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from click.testing import Result

from dr_runbooks.topology import database_function_name, runbook_function_name
from ehr_dr_sandbox.api import Sandbox

from .conftest import checks, failing

Drctl = Callable[..., Result]


@contextmanager
def without_statement(sandbox: Sandbox, role: str, sid: str) -> Iterator[dict[str, Any]]:
    """The role's managed policy holding statement `sid`, without it (a new default version) until the block ends;
    yields the statement removed."""
    iam = sandbox.client("iam")
    for attached in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
        policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
        document = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])[
            "PolicyVersion"]["Document"]
        document = json.loads(document) if isinstance(document, str) else document
        removed = [statement for statement in document["Statement"] if statement.get("Sid") == sid]
        if removed:
            break
    else:
        raise AssertionError(f"no policy of {role} has a statement {sid}")
    narrowed = {**document, "Statement": [statement for statement in document["Statement"]
                                          if statement.get("Sid") != sid]}
    new = iam.create_policy_version(PolicyArn=policy["Arn"], PolicyDocument=json.dumps(narrowed),
                                    SetAsDefault=True)["PolicyVersion"]["VersionId"]
    try:
        yield removed[0]
    finally:
        iam.set_default_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
        iam.delete_policy_version(PolicyArn=policy["Arn"], VersionId=new)


@pytest.mark.parametrize("runbook", ["restore-drill", "verify-replication", "game-day", "retention-sync"])
def test_the_plans_declared_calls_are_simulated_and_allowed_on_a_healthy_sandbox(
    drctl: Drctl, estate: Sandbox, runbook: str
) -> None:
    result = drctl("evaluate", "--runbook", runbook, "--output", "json")
    check = checks(result)["permissions"]
    assert check["verdict"] == "pass", check["reason"]
    found = re.fullmatch(rf"(\d+) declared calls allowed for (\d+) roles \({runbook}\)", check["reason"])
    assert found is not None, check["reason"]
    assert int(found[1]) > 0


def test_scratch_clusters_removed_from_the_dr_runbook_function_fails_the_check_naming_the_drill_step(
    drctl: Drctl, estate: Sandbox
) -> None:
    dr = estate.topology.dr_region
    role = f"{runbook_function_name(estate.config.env_name)}-{dr}"
    with without_statement(estate, role, "ScratchClusters"):
        result = drctl("evaluate", "--runbook", "restore-drill", "--output", "json")
    assert result.exit_code == 1
    assert list(failing(result)) == ["permissions"]
    # the scratch cluster's other actions are granted besides (DescribeDBClusters to find leftovers on `*`,
    # AddTagsToResource by ScratchInstances): its deletion is what the statement alone allowed
    assert failing(result)["permissions"] == (
        f"restore-drill step clean-leftovers: rds:DeleteDBCluster on arn:aws:rds:{dr}:{estate.topology.account}:"
        f"cluster:ehr-dr-demo-rd-readiness-check denied to {role} (implicitDeny)")


def test_scratch_master_password_removed_from_the_dr_database_function_fails_the_drills_validations(
    drctl: Drctl, estate: Sandbox
) -> None:
    """The validations connect to the scratch cluster: on AWS the DR region's database function runs them."""
    dr = estate.topology.dr_region
    role = f"{database_function_name(estate.config.env_name)}-{dr}"
    with without_statement(estate, role, "ScratchMasterPassword"):
        result = drctl("evaluate", "--runbook", "restore-drill", "--output", "json")
    assert result.exit_code == 1
    assert list(failing(result)) == ["permissions"]
    assert failing(result)["permissions"] == (
        f"restore-drill step validate-records: rds:ModifyDBCluster on arn:aws:rds:{dr}:{estate.topology.account}:"
        f"cluster:ehr-dr-demo-rd-readiness-check denied to {role} (implicitDeny)")
