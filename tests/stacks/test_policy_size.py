"""Every policy the stacks deploy fits IAM's quota (6,144 characters per managed policy, white space not counted):
CloudFormation fails the stack with LimitExceeded otherwise, and nothing before deployment says so."""

from __future__ import annotations

import json

import pytest

from ehr_dr_sandbox.deployed_iam import KEY_ALIAS, DeployedRole, deployed_roles, synth_context
from ehr_dr_sandbox.iam_enforcement import MANAGED_POLICY_MAX_CHARACTERS, policy_characters
from ehr_dr_sandbox.provision import sandbox_config
from stacks.app import CDK_JSON

#: A deployed KMS key ARN is this long (its id a UUID): what a key placeholder becomes.
KEY_ARN = "arn:aws:kms:us-west-1:123456789012:key/" + "0" * 36


@pytest.fixture(scope="module")
def roles() -> list[DeployedRole]:
    return deployed_roles(synth_context(sandbox_config(CDK_JSON)))


def deployed_size(document: dict) -> int:
    text = json.dumps(document)
    while KEY_ALIAS in text:
        start = text.index(KEY_ALIAS)
        text = text[:start] + KEY_ARN + text[text.index('"', start):]
    return policy_characters(text)


def test_every_managed_policy_fits_the_quota(roles: list[DeployedRole]) -> None:
    sizes = {name: deployed_size(document) for role in roles for name, document in role.policies.items()}
    assert {name: size for name, size in sizes.items() if size > MANAGED_POLICY_MAX_CHARACTERS} == {}


def test_the_operator_policy_is_split_rather_than_cut(roles: list[DeployedRole]) -> None:
    [operator] = [role for role in roles if role.name.endswith("-dr-operator")]
    sids = [statement.get("Sid") for document in operator.policies.values() for statement in document["Statement"]]
    assert len(operator.policies) >= 2
    assert {"FailOverTheGlobalDatabase", "ScratchClusters", "ScratchMasterPassword"} <= set(sids)
