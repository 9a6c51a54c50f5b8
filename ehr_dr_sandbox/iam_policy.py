"""IAM's policy evaluation for identity-based policies, as the sandbox enforces it (moto's checks only actions and
resources, and ignores conditions: the MFA, key-alias and namespace conditions the stacks rely on would never bite).

It follows "Policy evaluation logic" and "IAM JSON policy elements: Condition operators" (AWS IAM User Guide):

- an explicit `Deny` in any policy wins; otherwise an `Allow` whose Action, Resource and Condition all match allows;
  otherwise the request is implicitly denied;
- `Action`/`NotAction` and `Resource`/`NotResource` match with `*` and `?` wildcards (actions case-insensitively);
- every condition operator of a statement must hold, and within an operator every key; a key holds when any of the
  policy's values matches any of the request's (`ForAnyValue:`), all of the request's values match (`ForAllValues:`,
  true when the request has none);
- a key missing from the request fails its condition, except under `...IfExists` (then it holds) and `Null`.

Resource-based policies (key, bucket, topic policies), permissions boundaries, session policies and SCPs are not
evaluated: the sandbox's account is the stacks' own, and the runbooks' permissions come from their roles.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

ContextValue = str | list[str]


@dataclass(frozen=True)
class Request:
    """One authorization: an action on a resource, with the request's condition keys (a key's values as strings)."""

    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    #: "allowed", "explicit deny" or "implicit deny", as IAM's policy simulator calls them.
    verdict: str
    #: The deciding statement (its Sid or its index), for a denial the explicit Deny; None for an implicit deny.
    statement: str | None = None


class PolicyError(ValueError):
    """A policy uses a condition operator the sandbox does not evaluate: a gap in the emulation, never ignored."""


def evaluate(policies: Iterable[Mapping[str, Any] | str], request: Request) -> Decision:
    """IAM's decision on `request` under `policies` (documents or their JSON)."""
    allowed_by: str | None = None
    for name, statement in _statements(policies):
        if not _applies(statement, request):
            continue
        if statement.get("Effect") == "Deny":
            return Decision(False, "explicit deny", name)
        allowed_by = allowed_by or name
    if allowed_by is not None:
        return Decision(True, "allowed", allowed_by)
    return Decision(False, "implicit deny")


def _statements(policies: Iterable[Mapping[str, Any] | str]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    for policy in policies:
        document = json.loads(policy) if isinstance(policy, str) else policy
        statements = document.get("Statement", [])
        for index, statement in enumerate([statements] if isinstance(statements, dict) else statements):
            yield statement.get("Sid") or f"statement {index}", statement


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _applies(statement: Mapping[str, Any], request: Request) -> bool:
    return (_element(statement, "Action", request.action, ignore_case=True)
            and _element(statement, "Resource", request.resource, ignore_case=False)
            and conditions_hold(statement.get("Condition", {}), request.context))


def _element(statement: Mapping[str, Any], name: str, value: str, *, ignore_case: bool) -> bool:
    if name in statement:
        return any(wildcard_match(pattern, value, ignore_case) for pattern in _listed(statement[name]))
    if f"Not{name}" in statement:
        return not any(wildcard_match(pattern, value, ignore_case) for pattern in _listed(statement[f"Not{name}"]))
    return False


def wildcard_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """IAM's `*` (any run of characters, `:` and `/` included) and `?` (one character)."""
    return _wildcard(pattern, ignore_case).fullmatch(value) is not None


@cache
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, (re.IGNORECASE if ignore_case else 0) | re.DOTALL)


# ---------------------------------------------------------------------------------------------------- conditions


def conditions_hold(conditions: Mapping[str, Mapping[str, Any]], context: Mapping[str, ContextValue]) -> bool:
    """Every operator's every key holds (condition keys are case-insensitive)."""
    lowered = {key.lower(): value for key, value in context.items()}
    return all(_condition(operator, key, _listed(expected), lowered.get(key.lower()))
               for operator, keys in conditions.items() for key, expected in keys.items())


def _condition(operator: str, key: str, expected: list[Any], actual: ContextValue | None) -> bool:
    qualifier, _, name = operator.rpartition(":")
    if name == "Null":
        missing = actual is None or actual == []
        return any(str(value).lower() == str(missing).lower() for value in expected)
    if_exists = name.endswith("IfExists")
    name = name.removesuffix("IfExists")
    if actual is None:
        return if_exists or qualifier == "ForAllValues"
    compare = _operator(name)
    values = _listed(actual)
    if qualifier == "ForAllValues":
        return all(any(compare(str(e), v) for e in expected) for v in values)
    if name.startswith(("StringNot", "ArnNot")):  # negated: no value may match any of the policy's
        return all(compare(str(e), v) for e in expected for v in values)
    return any(compare(str(e), v) for e in expected for v in values)


def _operator(name: str) -> Callable[[str, str], bool]:
    try:
        return _OPERATORS[name]
    except KeyError:
        raise PolicyError(f"the sandbox does not evaluate the IAM condition operator {name!r}") from None


def _number(value: str) -> float:
    return float(value)


def _date(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda e, v: e == v,
    "StringNotEquals": lambda e, v: e != v,
    "StringEqualsIgnoreCase": lambda e, v: e.lower() == v.lower(),
    "StringNotEqualsIgnoreCase": lambda e, v: e.lower() != v.lower(),
    "StringLike": lambda e, v: wildcard_match(e, v),
    "StringNotLike": lambda e, v: not wildcard_match(e, v),
    "ArnEquals": lambda e, v: wildcard_match(e, v),
    "ArnLike": lambda e, v: wildcard_match(e, v),
    "ArnNotEquals": lambda e, v: not wildcard_match(e, v),
    "ArnNotLike": lambda e, v: not wildcard_match(e, v),
    "Bool": lambda e, v: e.lower() == v.lower(),
    "NumericEquals": lambda e, v: _number(v) == _number(e),
    "NumericNotEquals": lambda e, v: _number(v) != _number(e),
    "NumericLessThan": lambda e, v: _number(v) < _number(e),
    "NumericLessThanEquals": lambda e, v: _number(v) <= _number(e),
    "NumericGreaterThan": lambda e, v: _number(v) > _number(e),
    "NumericGreaterThanEquals": lambda e, v: _number(v) >= _number(e),
    "DateLessThan": lambda e, v: _date(v) < _date(e),
    "DateGreaterThan": lambda e, v: _date(v) > _date(e),
}
