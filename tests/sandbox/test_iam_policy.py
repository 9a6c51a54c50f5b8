"""The sandbox's IAM policy evaluation, held against the rules of "Policy evaluation logic" and "IAM JSON policy
elements: Condition operators" (IAM User Guide)."""

from __future__ import annotations

import pytest

from ehr_dr_sandbox.iam_policy import PolicyError, Request, evaluate, wildcard_match

BUCKET = "arn:aws:s3:::charts"


def policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: str | list[str], resource: str | list[str] = "*", **extra: object) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def test_nothing_allowed_is_an_implicit_deny() -> None:
    decision = evaluate([policy(allow("s3:GetObject", f"{BUCKET}/*"))], Request("s3:PutObject", f"{BUCKET}/a"))
    assert (decision.allowed, decision.verdict) == (False, "implicit deny")


def test_an_explicit_deny_wins_over_any_allow() -> None:
    deny = {"Effect": "Deny", "Action": "s3:*", "Resource": "*", "Sid": "NoS3"}
    decision = evaluate([policy(allow("*")), policy(deny)], Request("s3:GetObject", f"{BUCKET}/a"))
    assert (decision.allowed, decision.verdict, decision.statement) == (False, "explicit deny", "NoS3")


def test_actions_match_case_insensitively_with_wildcards() -> None:
    assert evaluate([policy(allow("S3:Get*"))], Request("s3:GetObjectVersion", f"{BUCKET}/a")).allowed


def test_resources_match_case_sensitively() -> None:
    assert not evaluate([policy(allow("s3:GetObject", "arn:aws:s3:::Charts/*"))],
                        Request("s3:GetObject", f"{BUCKET}/a")).allowed


def test_not_action_allows_everything_else() -> None:
    statement = {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}
    assert evaluate([policy(statement)], Request("s3:GetObject", f"{BUCKET}/a")).allowed
    assert not evaluate([policy(statement)], Request("iam:PassRole", "arn:aws:iam::1:role/r")).allowed


def test_a_question_mark_matches_one_character() -> None:
    assert wildcard_match("arn:aws:s3:::chart?", "arn:aws:s3:::charts")
    assert not wildcard_match("arn:aws:s3:::chart?", "arn:aws:s3:::chart")


def test_mfa_conditions_need_an_mfa_session_younger_than_the_limit() -> None:
    mfa = allow("sts:AssumeRole", Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"},
                                             "NumericLessThan": {"aws:MultiFactorAuthAge": 3600}})
    assert evaluate([policy(mfa)], Request("sts:AssumeRole", "*", {"aws:MultiFactorAuthPresent": "true",
                                                                   "aws:MultiFactorAuthAge": "10"})).allowed
    assert not evaluate([policy(mfa)], Request("sts:AssumeRole", "*", {"aws:MultiFactorAuthPresent": "true",
                                                                       "aws:MultiFactorAuthAge": "4000"})).allowed
    assert not evaluate([policy(mfa)], Request("sts:AssumeRole", "*", {})).allowed


def test_a_missing_key_holds_under_if_exists_only() -> None:
    namespace = allow("cloudwatch:PutMetricData", Condition={"StringEqualsIfExists": {"cloudwatch:namespace": "G"}})
    strict = allow("cloudwatch:PutMetricData", Condition={"StringEquals": {"cloudwatch:namespace": "G"}})
    assert evaluate([policy(namespace)], Request("cloudwatch:PutMetricData", "*")).allowed
    assert not evaluate([policy(strict)], Request("cloudwatch:PutMetricData", "*")).allowed
    assert not evaluate([policy(namespace)], Request("cloudwatch:PutMetricData", "*",
                                                     {"cloudwatch:namespace": "Other"})).allowed


def test_for_any_value_needs_one_match_and_for_all_values_needs_every_one() -> None:
    any_alias = allow("kms:Decrypt", Condition={"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/data"}})
    all_keys = allow("dynamodb:PutItem", Condition={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["g"]}})
    assert evaluate([policy(any_alias)], Request("kms:Decrypt", "k", {"kms:ResourceAliases": ["alias/x",
                                                                                             "alias/data"]})).allowed
    assert not evaluate([policy(any_alias)], Request("kms:Decrypt", "k", {"kms:ResourceAliases": ["alias/x"]})).allowed
    assert evaluate([policy(all_keys)], Request("dynamodb:PutItem", "t", {"dynamodb:LeadingKeys": ["g"]})).allowed
    assert not evaluate([policy(all_keys)], Request("dynamodb:PutItem", "t",
                                                    {"dynamodb:LeadingKeys": ["g", "lock"]})).allowed


def test_string_like_matches_service_wildcards() -> None:
    via = allow("kms:CreateGrant", Condition={"StringLike": {"kms:ViaService": "rds.*.amazonaws.com"}})
    assert evaluate([policy(via)], Request("kms:CreateGrant", "k", {"kms:ViaService": "rds.us-west-1.amazonaws.com"}
                                           )).allowed
    assert not evaluate([policy(via)], Request("kms:CreateGrant", "k", {"kms:ViaService": "s3.amazonaws.com"})).allowed


def test_string_not_equals_holds_only_when_no_value_matches() -> None:
    other = allow("iam:PassRole", Condition={"StringNotEquals": {"iam:PassedToService": ["a", "b"]}})
    assert not evaluate([policy(other)], Request("iam:PassRole", "r", {"iam:PassedToService": "b"})).allowed
    assert evaluate([policy(other)], Request("iam:PassRole", "r", {"iam:PassedToService": "c"})).allowed


def test_null_tests_whether_the_key_is_absent() -> None:
    absent = allow("s3:PutObject", Condition={"Null": {"s3:x-amz-server-side-encryption": "true"}})
    assert evaluate([policy(absent)], Request("s3:PutObject", BUCKET)).allowed
    assert not evaluate([policy(absent)], Request("s3:PutObject", BUCKET,
                                                  {"s3:x-amz-server-side-encryption": "aws:kms"})).allowed


def test_an_operator_the_sandbox_cannot_evaluate_is_an_error_not_a_pass() -> None:
    odd = allow("s3:GetObject", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})
    with pytest.raises(PolicyError, match="IpAddress"):
        evaluate([policy(odd)], Request("s3:GetObject", BUCKET, {"aws:SourceIp": "10.0.0.1"}))
