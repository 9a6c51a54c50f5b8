"""The permissions check on botocore's Stubber (moto has no iam:SimulatePrincipalPolicy): a denial names the step and
the action; every plan step declares its permissions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore.stub import ANY, Stubber

from dr_runbooks.config import DeploymentConfig
from dr_runbooks.orchestration.catalog import RUNBOOKS
from dr_runbooks.readiness.checks import NotReady, Scope
from dr_runbooks.readiness.simulation import _wanted, permissions
from dr_runbooks.runbooks.permissions import PERMISSIONS
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology, build_topology


@pytest.fixture
def topology() -> Topology:
    return build_topology(DeploymentConfig(env_name="demo", account="123456789012", hosted_zone_name="example.com",
                                           primary_endpoint="app-east.example.com",
                                           dr_endpoint="app-west.example.com"))


def _scope(topology: Topology, runbooks: tuple[str, ...]) -> Scope:
    aws = AwsSession.from_options(region="us-west-1")
    return Scope(aws=aws, topology=topology, writer=topology.primary_region, target=topology.dr_region,
                 runbooks=runbooks, now=datetime.now(UTC))


def _answer(scope: Scope, deny: tuple[str, str, str] | None = None) -> Stubber:
    """Stub one SimulatePrincipalPolicy answer per (role, resource, context) the check asks about, in its order;
    `deny` = (role name, action, resource) is answered implicitDeny, everything else allowed."""
    stubber = Stubber(scope.client("iam", scope.target))
    for (role, resource, _), actions in _wanted(scope).items():
        stubber.add_response("simulate_principal_policy", {"IsTruncated": False, "EvaluationResults": [
            {"EvalActionName": action, "EvalResourceName": resource,
             "EvalDecision": "implicitDeny" if deny == (role.rpartition("/")[2], action, resource) else "allowed"}
            for action in sorted(actions)]}, {"PolicySourceArn": role, "ActionNames": sorted(actions),
                                             **({"ResourceArns": ANY} if resource != "*" else {}),
                                             **({"ContextEntries": ANY} if _ else {})})
    stubber.activate()
    return stubber


def test_every_declared_call_allowed_passes(topology: Topology) -> None:
    scope = _scope(topology, ("failover",))
    with _answer(scope) as stubber:
        assert permissions(scope).endswith("allowed for 3 roles (failover)")
        stubber.assert_no_pending_responses()


def test_a_denied_call_names_the_step_the_action_and_the_role(topology: Topology) -> None:
    scope = _scope(topology, ("failover",))
    cluster = f"arn:aws:rds:us-west-1:123456789012:cluster:{topology.in_region('us-west-1').db_cluster_id}"
    with _answer(scope, deny=("ehr-dr-demo-dr-operator", "rds:FailoverGlobalCluster", cluster)), \
            pytest.raises(NotReady) as failed:
        permissions(scope)
    assert str(failed.value) == (f"failover step aurora-failover: rds:FailoverGlobalCluster on {cluster} denied to "
                                 "ehr-dr-demo-dr-operator (implicitDeny)")


def test_a_database_step_is_simulated_for_the_database_function_of_its_region(topology: Topology) -> None:
    wanted = _wanted(_scope(topology, ("switchover",)))
    secret = [role for role, resource, _ in wanted if resource.startswith("arn:aws:secretsmanager:us-east-1")]
    assert sorted(secret) == ["arn:aws:iam::123456789012:role/ehr-dr-demo-dr-operator",
                              "arn:aws:iam::123456789012:role/ehr-dr-demo-runbooks-db-us-east-1"]


@pytest.mark.parametrize("runbook", sorted(PERMISSIONS))
def test_every_step_of_the_plan_declares_its_permissions(runbook: str) -> None:
    assert [step.name for step in RUNBOOKS[runbook].plan().steps] == list(PERMISSIONS[runbook])


def test_every_orchestrated_runbook_declares_its_permissions() -> None:
    assert sorted(PERMISSIONS) == sorted(RUNBOOKS)
