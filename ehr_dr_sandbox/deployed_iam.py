"""The IAM roles and policies the stacks deploy, read from a synth of the CDK app, for the sandbox to create.

The sandbox authorizes requests against these (`iam_enforcement.py`), so a permission a stack forgets fails a test
instead of a drill in a real account. They come from the synthesized templates rather than from the stacks' Python,
so CDK's own additions (grants, generated names) are what the sandbox enforces, as CloudFormation would deploy them.

A synth costs seconds, so its result is cached per config and per source of `stacks/` and `dr_runbooks/` (a changed
policy, or a change here, is a new cache entry) under `$XDG_CACHE_HOME/ehr-dr` (or `~/.cache/ehr-dr`). The functions'
code is a stub in this synth: their permissions do not depend on their package.

CloudFormation's intrinsics are resolved as a deployment would: `Ref` and `Fn::GetAtt ... Arn` of the roles, buckets,
tables and topics the stacks name; `Fn::ImportValue` through the region's exports; `Fn::Join`, `Fn::Select`,
`Fn::Split`, `Fn::Sub`. A KMS key's ARN exists only once the sandbox created the key: it stays a `KEY_ALIAS`
placeholder naming the key's alias, which `provision` replaces. Anything else unresolved fails the synth's reading,
naming the reference: an enforced policy is never silently wider or narrower than the deployed one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from dr_runbooks.config import DeploymentConfig

DEMO_CDK_JSON = Path(__file__).resolve().parent / "demo" / "cdk.json"
#: `<KEY_ALIAS><region>:alias/...`: a KMS key's ARN, known once the sandbox created the key with that alias.
KEY_ALIAS = "sandbox-kms-key-by-alias:"
#: The resource types a policy names by ARN, and how CloudFormation builds their ARN and their `Ref`.
_NAMED_TYPES: dict[str, tuple[str, str]] = {
    # type: (name property, ARN template)
    "AWS::IAM::Role": ("RoleName", "arn:aws:iam::{account}:role/{name}"),
    "AWS::S3::Bucket": ("BucketName", "arn:aws:s3:::{name}"),
    "AWS::DynamoDB::Table": ("TableName", "arn:aws:dynamodb:{region}:{account}:table/{name}"),
    "AWS::SNS::Topic": ("TopicName", "arn:aws:sns:{region}:{account}:{name}"),
    "AWS::Lambda::Function": ("FunctionName", "arn:aws:lambda:{region}:{account}:function:{name}"),
    "AWS::StepFunctions::StateMachine": ("StateMachineName", "arn:aws:states:{region}:{account}:stateMachine:{name}"),
    "AWS::Logs::LogGroup": ("LogGroupName", "arn:aws:logs:{region}:{account}:log-group:{name}:*"),
    "AWS::Backup::BackupVault": ("BackupVaultName", "arn:aws:backup:{region}:{account}:backup-vault:{name}"),
    "AWS::RDS::DBCluster": ("DBClusterIdentifier", "arn:aws:rds:{region}:{account}:cluster:{name}"),
    "AWS::IAM::ManagedPolicy": ("ManagedPolicyName", "arn:aws:iam::{account}:policy/{name}"),
}


#: The types whose `Ref` resolves to their ARN here: CloudFormation's `Ref` of a managed policy, topic or state
#: machine is its ARN; a KMS key's is its id, which a policy cannot name a key by (only its ARN), so the ARN it is.
#: The rest resolve to their name.
_REF_IS_ARN = ("AWS::IAM::ManagedPolicy", "AWS::SNS::Topic", "AWS::StepFunctions::StateMachine", "AWS::KMS::Key")


@dataclass(frozen=True)
class DeployedRole:
    """A role as the stacks deploy it: its trust policy, the AWS managed policies it attaches (by name), and its own
    policies (managed or inline, by name), resolved."""

    name: str
    trust: dict[str, Any]
    aws_managed: list[str]
    policies: dict[str, dict[str, Any]]


class UnresolvedReference(ValueError):
    """A policy names something the sandbox cannot turn into the ARN a deployment would."""


def synth_context(config: DeploymentConfig) -> dict[str, Any]:
    """The CDK context that deploys `config`: its values, on the feature flags of the demo config shipped with the
    sandbox (the checkout's own cdk.json, which a package installed elsewhere has not)."""
    flags = json.loads(DEMO_CDK_JSON.read_text())["context"]
    return {**{key: value for key, value in flags.items() if key.startswith("@")},
            **config.model_dump(mode="json", exclude_none=True)}


def deployed_roles(config_context: Mapping[str, Any]) -> list[DeployedRole]:
    """Every role of the app synthesized with `config_context` (the CDK context the sandbox deploys), cached."""
    cache = _cache_dir() / f"iam-{_fingerprint(config_context)}.json"
    if cache.is_file():
        return [DeployedRole(**role) for role in json.loads(cache.read_text())]
    roles = roles_of(_synthesize(config_context))
    cache.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(dir=cache.parent, prefix=".iam-", suffix=".tmp")
    with os.fdopen(handle, "w") as file:
        json.dump([asdict(role) for role in roles], file)
    os.replace(staging, cache)  # concurrent sandboxes write the same content: last one wins, none reads half a file
    return roles


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ehr-dr"


def _fingerprint(context: Mapping[str, Any]) -> str:
    """The config, every source file the templates depend on (the stacks and the topology they build from), and this
    module (how roles are read from them)."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256(json.dumps(context, sort_keys=True, default=str).encode())
    digest.update(version("aws-cdk-lib").encode())
    for path in [*sorted((root / "stacks").rglob("*.py")), *sorted((root / "dr_runbooks").rglob("*.py")),
                 Path(__file__).resolve()]:
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:24]


def _synthesize(context: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    from aws_cdk import aws_lambda as lambda_

    from stacks.app import build_app

    stub = lambda_.Code.from_inline("# the sandbox reads the stacks' IAM: no function package needed")
    with tempfile.TemporaryDirectory(prefix="ehr-dr-iam-") as outdir:
        assembly = build_app(dict(context), outdir, function_code=stub).synth()
        return {stack.stack_name: {"region": stack.environment.region, "account": stack.environment.account,
                                   "template": stack.template} for stack in assembly.stacks}


def roles_of(stacks: Mapping[str, Mapping[str, Any]]) -> list[DeployedRole]:
    """The roles of synthesized stacks (`{stack name: {"region", "account", "template"}}`), intrinsics resolved."""
    exports = {name: (stack_name, value) for stack_name, stack in stacks.items()
               for output in stack["template"].get("Outputs", {}).values()
               if isinstance(name := output.get("Export", {}).get("Name"), str) for value in [output["Value"]]}
    resolvers = {name: _Resolver(name, stack, stacks, exports) for name, stack in stacks.items()}
    roles: dict[tuple[str, str], DeployedRole] = {}
    for stack_name, stack in stacks.items():
        resolve = resolvers[stack_name]
        for logical, resource in stack["template"]["Resources"].items():
            if resource["Type"] != "AWS::IAM::Role":
                continue
            props = resolve(resource["Properties"])
            managed = [arn for arn in props.get("ManagedPolicyArns", []) if ":iam::aws:policy/" in arn]
            inline = {p["PolicyName"]: p["PolicyDocument"] for p in props.get("Policies", [])}
            for reference in resource["Properties"].get("ManagedPolicyArns", []):  # the stack's own, by Ref
                if isinstance(reference, dict) and "Ref" in reference:
                    policy = resolve.resources[reference["Ref"]]
                    inline[resolve.physical_name(reference["Ref"])] = resolve(policy["Properties"]["PolicyDocument"])
            roles[(stack_name, logical)] = DeployedRole(
                name=resolve.physical_name(logical), trust=props["AssumeRolePolicyDocument"],
                aws_managed=[arn.partition(":policy/")[2] for arn in managed], policies=inline)
        for logical, resource in stack["template"]["Resources"].items():
            if resource["Type"] not in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
                continue
            policy_name = resource["Properties"].get("PolicyName") or resolve.physical_name(logical)
            document = resolve(resource["Properties"]["PolicyDocument"])
            for reference in resource["Properties"].get("Roles", []):
                role_logical = reference["Ref"]
                roles[(stack_name, role_logical)].policies[policy_name] = document
    return sorted(roles.values(), key=lambda role: role.name)


class _Resolver:
    """CloudFormation's intrinsics within one stack (see the module docstring)."""

    def __init__(self, name: str, stack: Mapping[str, Any], stacks: Mapping[str, Mapping[str, Any]],
                 exports: Mapping[str, tuple[str, Any]]) -> None:
        self.name, self.stacks, self.exports = name, stacks, exports
        self.region, self.account = stack["region"], stack["account"]
        self.resources: dict[str, Any] = stack["template"]["Resources"]

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (function, argument), = value.items()
            if function == "Ref":
                return self.ref(argument)
            if function == "Fn::GetAtt":
                return self.get_att(*(argument.split(".", 1) if isinstance(argument, str) else argument))
            if function == "Fn::Join":
                separator, parts = argument
                return separator.join(str(part) for part in self(parts))
            if function == "Fn::Select":
                index, items = argument
                return self(items)[int(self(index))]
            if function == "Fn::Split":
                separator, text = argument
                return str(self(text)).split(separator)
            if function == "Fn::ImportValue":
                stack_name, exported = self.exports[self(argument)]
                return _Resolver(stack_name, self.stacks[stack_name], self.stacks, self.exports)(exported)
            if function == "Fn::Sub":
                return self.sub(argument)
        return {key: self(item) for key, item in value.items()}

    def ref(self, name: str) -> str:
        pseudo = {"AWS::Partition": "aws", "AWS::AccountId": self.account, "AWS::Region": self.region,
                  "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": self.name}
        if name in pseudo:
            return pseudo[name]
        if self._resource(name)["Type"] in _REF_IS_ARN:
            return self.get_att(name, "Arn")
        return self.physical_name(name)

    def get_att(self, name: str, attribute: str) -> str:
        resource = self._resource(name)
        kind = resource["Type"]
        if attribute != "Arn":
            raise UnresolvedReference(f"{self.name}: {name}.{attribute}")
        if kind == "AWS::KMS::Key":
            return f"{KEY_ALIAS}{self.region}:{self._alias_of(name)}"
        if kind not in _NAMED_TYPES:
            raise UnresolvedReference(f"{self.name}: the ARN of {name} ({kind})")
        return _NAMED_TYPES[kind][1].format(region=self.region, account=self.account, name=self.physical_name(name))

    def physical_name(self, name: str) -> str:
        """The name the stacks give, or the one CloudFormation generates (`<stack>-<logical id>`, shortened)."""
        resource = self._resource(name)
        prop = _NAMED_TYPES.get(resource["Type"], ("", ""))[0]
        given = resource.get("Properties", {}).get(prop)
        return str(self(given)) if given is not None else f"{self.name}-{name}"[:64]

    def sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {key: self(value) for key, value in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in values:
                return str(values[name])
            if "." in name:
                return self.get_att(*name.split(".", 1))
            return self.ref(name)

        return re.sub(r"\$\{([^}!]+)\}", replace, text)

    def _alias_of(self, key: str) -> str:
        for resource in self.resources.values():
            if resource["Type"] == "AWS::KMS::Alias" and resource["Properties"].get("TargetKeyId") in (
                    {"Ref": key}, {"Fn::GetAtt": [key, "Arn"]}):
                return resource["Properties"]["AliasName"]
        raise UnresolvedReference(f"{self.name}: key {key} has no alias to find it by")

    def _resource(self, name: str) -> dict[str, Any]:
        try:
            return self.resources[name]
        except KeyError:
            raise UnresolvedReference(f"{self.name}: no resource {name}") from None
