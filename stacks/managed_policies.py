"""Customer managed policies that fit IAM's size quota.

A managed policy's document may not exceed 6,144 characters, white space not counted ("IAM and AWS STS quotas",
IAM User Guide): CloudFormation fails the stack with LimitExceeded otherwise. A role whose statements outgrow one
policy gets several, each under the quota, attached to the same role (10 managed policies per role by default).
"""

from __future__ import annotations

import json

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

#: IAM's quota for one managed policy document, in characters without white space.
MANAGED_POLICY_MAX_CHARACTERS = 6144
#: What a policy is filled to here: the synthesized size of a statement holds tokens (an imported key's ARN is an
#: `Fn::ImportValue`), not the deployed ARNs, so room is left for the difference. The stack tests measure the
#: deployed sizes against the quota itself.
FILL_CHARACTERS = 5000


def managed_policies(scope: Construct, label: str, statements: list[iam.PolicyStatement],
                     roles: list[iam.IRole] | None = None) -> list[iam.ManagedPolicy]:
    """`label`, `label`Part2, ...: the statements in order, as few policies as the quota allows."""
    stack = cdk.Stack.of(scope)
    chunks: list[list[iam.PolicyStatement]] = [[]]
    size = 0
    for statement in statements:
        cost = len(json.dumps(stack.resolve(statement.to_statement_json()), separators=(",", ":")))
        if chunks[-1] and size + cost > FILL_CHARACTERS:
            chunks.append([])
            size = 0
        chunks[-1].append(statement)
        size += cost
    return [iam.ManagedPolicy(scope, label if index == 0 else f"{label}Part{index + 1}", roles=roles,
                              statements=chunk) for index, chunk in enumerate(chunks)]
