"""The sandbox enforces IAM on the stacks' roles: a call made with a role's session is authorized against the role's
policies, as they are in the sandbox's IAM (provisioned from the stacks by `provision._iam`).

- **Who calls.** The sandbox's default credentials stand for the account's administrator (the root user: allowed
  everything, as provisioning and the tests' own checks need). Credentials from `sts:AssumeRole`, or from a service
  assuming a role (`assume-service-role`, what Lambda does with a function's execution role), are that role's session:
  every call with them is authorized ("Policy evaluation logic", IAM User Guide; `iam_policy.py`) on the actions,
  resources and condition keys of the call (`iam_requests.py`). A denied call gets AWS's `AccessDenied` (403) in the
  service's protocol, naming the principal, the action and the resource, and the sandbox's `iam` status lists it.
- **Assuming a role** evaluates its trust policy ("How IAM roles differ from resource-based policies": the role's
  trust policy names who may assume it): the role must exist; an account principal (`arn:aws:iam::ACCOUNT:root`)
  admits the account's callers, a service principal only that service; `aws:MultiFactorAuthPresent` is true and
  `aws:MultiFactorAuthAge` counts from the call only when it carries `SerialNumber` and `TokenCode` ("AWS global
  condition context keys").
- `sts:GetCallerIdentity` needs no permission (AWS STS API Reference).
- A managed policy document over 6,144 characters (white space not counted) is refused with `LimitExceeded`, as
  IAM does ("IAM and AWS STS quotas"); moto accepts any size.
- moto's policy validator refuses an S3 ARN with a region unless it names an access point; AWS's S3 Batch Operations
  jobs are `arn:aws:s3:<region>:<account>:job/<id>` (Service Authorization Reference, Amazon S3: resource type job), so
  the sandbox admits those too.
- `iam:SimulatePrincipalPolicy` (which moto lacks) answers from the same evaluation, so a readiness check and the
  enforcement can never disagree.
"""

from __future__ import annotations

import json
import re
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from moto.iam import policy_validation
from moto.sts.models import sts_backends

from ehr_dr_sandbox.context import SandboxContext
from ehr_dr_sandbox.dispatch import Call, Forward, Registry, Reply
from ehr_dr_sandbox.emulated_api import ApiError, answer
from ehr_dr_sandbox.iam_policy import Decision, PolicyError, Request, evaluate
from ehr_dr_sandbox.iam_requests import Mapping

#: IAM's quota for a managed policy document ("IAM and AWS STS quotas"), in characters without white space.
MANAGED_POLICY_MAX_CHARACTERS = 6144
#: Denials kept for the status report (the newest).
KEPT_DENIALS = 50
#: Needs no permission (AWS STS API Reference, GetCallerIdentity).
UNAUTHORIZED_OPERATIONS = {("sts", "GetCallerIdentity")}


@dataclass(frozen=True)
class RoleSession:
    """Credentials of a role: who assumed it (an account's caller or a service) and whether with MFA."""

    role_name: str
    session_name: str
    mfa: bool
    issued: float
    service: str | None = None

    def arn(self, account: str) -> str:
        return f"arn:aws:sts::{account}:assumed-role/{self.role_name}/{self.session_name}"


class Enforcement:
    def __init__(self, context: SandboxContext) -> None:
        self.context = context
        self.account = context.config.account
        self.sessions: dict[str, RoleSession] = {}
        self.denials: deque[dict[str, str]] = deque(maxlen=KEPT_DENIALS)
        self.counts = {"authorized": 0, "denied": 0}
        self._lock = threading.Lock()

    # ---------------------------------------------------------------------------------------------- the role's policies

    def policies(self, role_name: str) -> list[str]:
        """The role's identity-based policies as the sandbox's IAM holds them now (a test may change them)."""
        role = self._iam().get_role(role_name)
        documents = [_default_document(policy) for policy in role.managed_policies.values()]
        return [*documents, *role.policies.values()]

    def documents(self, role_name: str) -> list[dict[str, Any]]:
        """The role's policies, parsed (each document once: they change only when a test or drift changes them)."""
        return [_parsed(document) for document in self.policies(role_name)]

    def decide(self, role_name: str, request: Request) -> Decision:
        return evaluate(self.documents(role_name), request)

    # ------------------------------------------------------------------------------------------------------ the guard

    def guard(self, call: Call) -> Reply | None:
        session = self.session_of(call)
        if session is None or (call.service, call.operation) in UNAUTHORIZED_OPERATIONS:
            return None
        context = {"aws:MultiFactorAuthPresent": str(session.mfa).lower(),
                   "aws:PrincipalArn": f"arn:aws:iam::{self.account}:role/{session.role_name}"}
        if session.mfa:
            context["aws:MultiFactorAuthAge"] = str(int(time.time() - session.issued))
        documents = self.documents(session.role_name)  # once per call: a batch delete authorizes every key
        for request in Mapping(call, self.account, _MotoEstate(self.context)).requests():
            request = Request(request.action, request.resource, {**request.context, **context})
            try:
                decision = evaluate(documents, request)
            except PolicyError as error:  # a gap of the emulation: said, never passed silently
                return Reply.error(call, "InternalFailure", f"sandbox: {error}", 500)
            if not decision.allowed:
                return self._deny(call, session, request, decision)
        with self._lock:
            self.counts["authorized"] += 1
        return None

    def session_of(self, call: Call) -> RoleSession | None:
        return self.sessions.get(call.access_key) if call.access_key else None

    def _deny(self, call: Call, session: RoleSession, request: Request, decision: Decision) -> Reply:
        why = ("with an explicit deny in an identity-based policy" if decision.verdict == "explicit deny"
               else f"because no identity-based policy allows the {request.action} action")
        message = (f"User: {session.arn(self.account)} is not authorized to perform: {request.action} "
                   f"on resource: {request.resource} {why}")
        with self._lock:
            self.counts["denied"] += 1
            self.denials.append({"role": session.role_name, "action": request.action, "resource": request.resource,
                                 "region": call.region, "verdict": decision.verdict})
        code = "AccessDeniedException" if call.protocol in ("json", "rest-json") else "AccessDenied"
        return Reply.error(call, code, message, 403)

    # ------------------------------------------------------------------------------------------------- assuming roles

    def assume_role(self, call: Call, forward: Forward) -> Reply:
        """sts:AssumeRole by one of the account's callers: the role's trust policy decides, then moto issues."""
        role_arn, serial, code = call.param("RoleArn") or "", call.param("SerialNumber"), call.param("TokenCode")
        caller = self.session_of(call)
        mfa = bool(serial and code)
        role_name = role_arn.rpartition("/")[2]
        refusal = self._trust_refusal(role_name, principal=f"arn:aws:iam::{self.account}:root", service=None, mfa=mfa)
        if refusal is None and caller is not None:
            decision = self.decide(caller.role_name, Request("sts:AssumeRole", role_arn))
            refusal = None if decision.allowed else f"no policy of {caller.role_name} allows sts:AssumeRole"
        if refusal is not None:
            who = caller.arn(self.account) if caller else f"arn:aws:iam::{self.account}:root"
            return Reply.error(call, "AccessDenied", f"User: {who} is not authorized to perform: sts:AssumeRole on "
                                                     f"resource: {role_arn} ({refusal})", 403)
        reply = forward()
        if reply.ok:
            key = _xml_text(reply.body, "AccessKeyId")
            with self._lock:
                self.sessions[key] = RoleSession(role_name, call.param("RoleSessionName") or "", mfa, time.time())
        return reply

    def assume_as_service(self, role_name: str, service: str, session_name: str) -> dict[str, str]:
        """What a service does with the role it is given (Lambda with a function's execution role)."""
        refusal = self._trust_refusal(role_name, principal=None, service=service, mfa=False)
        if refusal is not None:
            raise ValueError(f"{service} cannot assume {role_name}: {refusal}")
        region = self.context.config.primary_region
        backend = sts_backends[self.account]["aws"]
        assumed = backend.assume_role(region_name=region, role_session_name=session_name,
                                      role_arn=f"arn:aws:iam::{self.account}:role/{role_name}", policy="",
                                      duration=3600, external_id="")
        with self._lock:
            self.sessions[assumed.access_key_id] = RoleSession(role_name, session_name, False, time.time(), service)
        return {"AccessKeyId": assumed.access_key_id, "SecretAccessKey": assumed.secret_access_key,
                "SessionToken": assumed.session_token}

    def _trust_refusal(self, role_name: str, *, principal: str | None, service: str | None, mfa: bool) -> str | None:
        try:
            trust = self._iam().get_role(role_name).assume_role_policy_document
        except Exception:
            return f"no role {role_name}"
        statements = [{**statement, "Resource": "*"} for statement in _parsed(trust)["Statement"]
                      if _names(statement.get("Principal", {}), principal, service)]
        context = {"aws:MultiFactorAuthPresent": "true", "aws:MultiFactorAuthAge": "0"} if mfa else {}
        decision = evaluate([{"Statement": statements}], Request("sts:AssumeRole", "*", context))
        if decision.allowed:
            return None
        if statements and not mfa:
            return "its trust policy requires MFA"
        return "its trust policy does not admit this principal"

    # ---------------------------------------------------------------------------------------- the policy simulator

    def simulate(self, call: Call) -> dict[str, Any]:
        """iam:SimulatePrincipalPolicy for a role: each action on each resource, evaluated as the guard would."""
        role_name = (call.param("PolicySourceArn") or "").rpartition("/")[2]
        if role_name not in {role.name for role in self._iam().roles.values()}:
            raise ApiError("NoSuchEntity", f"The role with name {role_name} cannot be found.", 404)
        actions = call.param_list("ActionNames")
        resources = call.param_list("ResourceArns") or ["*"]
        context: dict[str, str | list[str]] = {}
        entry = 1
        while (key := call.param(f"ContextEntries.member.{entry}.ContextKeyName")) is not None:
            context[key] = call.param_list(f"ContextEntries.member.{entry}.ContextKeyValues")
            entry += 1
        results = []
        for action in actions:
            for resource in resources:
                decision = self.decide(role_name, Request(action, resource, context))
                results.append({"EvalActionName": action, "EvalResourceName": resource,
                                "EvalDecision": decision.verdict.replace(" ", "").replace("deny", "Deny"),
                                "MatchedStatements": [{"SourcePolicyId": decision.statement}]
                                if decision.statement else []})
        return {"EvaluationResults": results, "IsTruncated": False}

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {"sessions": len(self.sessions), **self.counts, "denials": list(self.denials)}

    def _iam(self) -> Any:
        return self.context.backend("iam", self.context.config.primary_region)


class _MotoEstate:
    """`iam_requests.Estate` from moto's state: keys and their aliases, bucket keys, secret ARNs, table keys."""

    def __init__(self, context: SandboxContext) -> None:
        self.context = context

    def key_arn(self, region: str, key_id: str) -> str | None:
        kms = self.context.backend("kms", region)
        try:
            return kms.describe_key(kms.any_id_to_key_id(key_id)).arn
        except Exception:
            return None

    def key_aliases(self, key_arn: str) -> list[str]:
        region = key_arn.split(":")[3]
        try:
            return sorted(self.context.backend("kms", region).keys[key_arn.rpartition("/")[2]].aliases)
        except KeyError:
            return []

    def bucket_key(self, bucket: str) -> str | None:
        try:
            found = self.context.backend("s3", "us-east-1").get_bucket(bucket)
        except Exception:
            return None
        rule = (found.encryption or {}).get("Rule", {}).get("ApplyServerSideEncryptionByDefault", {})
        key = rule.get("KMSMasterKeyID")
        return self.key_arn(found.region_name, key) if rule.get("SSEAlgorithm") == "aws:kms" and key else None

    def secret_arn(self, region: str, secret_id: str) -> str:
        try:
            return self.context.backend("secretsmanager", region).describe_secret(secret_id).arn
        except Exception:
            return f"arn:aws:secretsmanager:{region}:{self.context.config.account}:secret:{secret_id}"

    def partition_key(self, region: str, table: str) -> str | None:
        try:
            return self.context.backend("dynamodb", region).get_table(table).hash_key_attr
        except Exception:
            return None


def _names(principal: Any, account_principal: str | None, service: str | None) -> bool:
    """Whether a trust statement's Principal names this caller (an account root admits the account's callers)."""
    if principal == "*":
        return True
    listed = {kind: value if isinstance(value, list) else [value] for kind, value in principal.items()}
    if service is not None:
        return service in listed.get("Service", [])
    return account_principal is not None and account_principal in listed.get("AWS", [])


def policy_characters(document: str) -> int:
    """A policy's size as IAM counts it against its quota: white space is not counted."""
    return len(re.sub(r"\s", "", document))


def _default_document(policy: Any) -> str:
    """The policy's default version (by the policy's own pointer: moto's per-version flags can disagree with it)."""
    return next(version.document for version in policy.versions if version.version_id == policy.default_version_id)


@lru_cache(maxsize=256)
def _parsed(document: str) -> dict[str, Any]:
    """A policy document as moto keeps it (JSON text), parsed once per distinct text."""
    return json.loads(document)


def _xml_text(body: bytes, tag: str) -> str:
    element = next(e for e in ElementTree.fromstring(body).iter() if e.tag.rpartition("}")[2] == tag)
    return element.text or ""


def _admit_batch_job_arns() -> None:
    regional = policy_validation.SERVICE_TYPE_REGION_INFORMATION_ERROR_ASSOCIATIONS["s3"]["valid_starting_values"]
    if "job/" not in regional:
        regional.append("job/")


def install(registry: Registry, context: SandboxContext) -> None:
    _admit_batch_job_arns()
    enforcement = Enforcement(context)
    registry.guard(enforcement.guard)
    registry.intercept("sts", "AssumeRole")(enforcement.assume_role)
    registry.report("iam")(enforcement.report)

    def policy_size(call: Call, forward: Forward) -> Reply:
        size = policy_characters(call.param("PolicyDocument") or "")
        if size > MANAGED_POLICY_MAX_CHARACTERS:
            return Reply.error(call, "LimitExceeded", f"Cannot exceed quota for PolicySize: "
                                                      f"{MANAGED_POLICY_MAX_CHARACTERS} (this one: {size})", 409)
        return forward()

    for operation in ("CreatePolicy", "CreatePolicyVersion"):
        registry.intercept("iam", operation)(policy_size)

    @registry.intercept("iam", "SimulatePrincipalPolicy")
    def simulate(call: Call, forward: Forward) -> Reply:
        return answer(call, lambda: enforcement.simulate(call))

    @registry.action("assume-service-role")
    def service_role(arguments: dict[str, Any]) -> dict[str, str]:
        return enforcement.assume_as_service(arguments["role"], arguments.get("service", "lambda.amazonaws.com"),
                                             arguments.get("session", "sandbox"))
