"""Monitoring: an encrypted on-call topic per region; every alarm of the estate acts, and alarm names match topology."""

from __future__ import annotations

from stack_assembly import Estate


def test_oncall_topic_is_the_topology_topic_and_kms_encrypted(estate: Estate, region: str) -> None:
    topic = estate.only("monitoring", region, "AWS::SNS::Topic")
    assert estate.topology.in_region(region).oncall_topic_arn.endswith(f":{topic['TopicName']}")
    assert "KmsMasterKeyId" in topic


def test_every_alarm_in_every_stack_has_an_action(estate: Estate) -> None:
    alarms = [
        (name, resource["Properties"])
        for name, template in estate.templates.items()
        for resource in template.get("Resources", {}).values()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    ]
    assert alarms
    for name, alarm in alarms:
        assert alarm.get("AlarmActions"), f"{alarm['AlarmName']} in {name} has no action"


def test_alarm_names_are_the_topology_alarm_names(estate: Estate, region: str) -> None:
    deployed = {
        alarm["Properties"]["AlarmName"]
        for concern in ("monitoring", "audit")
        for alarm in estate.resources(concern, region, "AWS::CloudWatch::Alarm").values()
    }
    assert deployed == set(estate.topology.in_region(region).alarm_names)


def test_aurora_lag_alarm_fires_at_the_rpo_target(estate: Estate, region: str) -> None:
    (lag,) = [a["Properties"] for a in estate.resources("monitoring", region, "AWS::CloudWatch::Alarm").values()
              if a["Properties"]["MetricName"] == "AuroraGlobalDBReplicationLag"]
    assert lag["Threshold"] == estate.config.rpo_minutes * 60 * 1000
