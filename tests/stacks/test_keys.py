"""The data key of each region: rotated, aliased by the topology, usable for cryptography only through services."""

from __future__ import annotations

from typing import Any

from stack_assembly import Estate

CRYPTO = ("kms:Decrypt", "kms:Encrypt", "kms:ReEncrypt", "kms:GenerateDataKey", "kms:*")


def _statements(estate: Estate, region: str) -> list[dict[str, Any]]:
    return estate.only("keys", region, "AWS::KMS::Key")["KeyPolicy"]["Statement"]


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else actions


def test_each_region_has_its_own_rotated_key(estate: Estate, region: str) -> None:
    key = estate.only("keys", region, "AWS::KMS::Key")
    assert key["EnableKeyRotation"] is True
    assert "MultiRegion" not in key


def test_key_alias_is_the_topology_alias(estate: Estate, region: str) -> None:
    alias = estate.only("keys", region, "AWS::KMS::Alias")
    assert alias["AliasName"] == estate.topology.in_region(region).kms_key_alias


def test_account_principals_use_the_key_only_through_this_regions_services(estate: Estate, region: str) -> None:
    account_statements = [s for s in _statements(estate, region) if "AWS" in s["Principal"]]
    crypto = [s for s in account_statements if any(a.startswith(CRYPTO) for a in _actions(s))]
    assert crypto
    for statement in crypto:
        services = statement["Condition"]["StringEquals"]["kms:ViaService"]
        services = [services] if isinstance(services, str) else services
        assert all(service.endswith(f".{region}.amazonaws.com") for service in services)


def test_key_administration_grants_no_cryptography(estate: Estate, region: str) -> None:
    (admin,) = [s for s in _statements(estate, region) if s.get("Sid") == "KeyAdministration"]
    assert not any(action.startswith(CRYPTO) for action in _actions(admin))


def test_cloudtrail_may_describe_the_key_without_an_encryption_context_condition_it_could_never_meet(
        estate: Estate, region: str) -> None:
    """DescribeKey carries no encryption context: put under the GenerateDataKey statement's context condition it is
    never allowed, and CloudTrail's delivery fails (AWS's CloudTrail guide gives it a statement of its own)."""
    cloudtrail = [s for s in _statements(estate, region) if s["Principal"].get("Service") == "cloudtrail.amazonaws.com"]
    describe = [s for s in cloudtrail if "kms:DescribeKey" in _actions(s)]
    assert describe and all("kms:EncryptionContext:aws:cloudtrail:arn" not in str(s.get("Condition", {}))
                            for s in describe)
    generate = [s for s in cloudtrail if any(a.startswith("kms:GenerateDataKey") for a in _actions(s))]
    assert generate and all("kms:EncryptionContext:aws:cloudtrail:arn" in s["Condition"]["StringLike"]
                            for s in generate)
