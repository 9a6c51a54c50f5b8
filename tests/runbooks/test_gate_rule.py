"""The gate rule (`dr_runbooks.observe.traffic.desired_gates`) checked against Route 53's failover semantics, for every
(writer, dark region) a runbook can finish in, from every gate state some sequence of runbooks can leave."""

from __future__ import annotations

from itertools import product

import pytest

from dr_runbooks.config import DeploymentConfig
from dr_runbooks.observe import traffic
from dr_runbooks.topology import Topology, build_topology

PRIMARY, DR = "us-east-1", "us-west-1"
BOTH = frozenset((PRIMARY, DR))
Gates = tuple[tuple[str, str], ...]


@pytest.fixture(scope="module")
def topology() -> Topology:
    return build_topology(DeploymentConfig(
        env_name="rule", account="123456789012", primary_region=PRIMARY, dr_region=DR,
        hosted_zone_name="example.com", primary_endpoint="east.example.com", dr_endpoint="west.example.com"))


def run(topology: Topology, gates: Gates, writer: str, answering: frozenset[str]) -> Gates:
    """A runbook that leaves `writer` writing, reaching only `answering`: the gates it can set follow the rule."""
    wanted = traffic.reachable_gates(topology, traffic.desired_gates(topology, writer, answering), answering)
    return tuple(sorted({**dict(gates), **wanted}.items()))


def dns(topology: Topology, gates: Gates, answering: frozenset[str]) -> str:
    answers = traffic.dns_answers(topology, {region: region in answering for region in BOTH}, dict(gates))
    assert len(answers) == 1
    return answers.pop()


State = tuple[Gates, str, bool]


def runs(topology: Topology, state: State) -> list[tuple[State, frozenset[str]]]:
    """The runbooks that can follow `state` (gates, writer, whether the partner is a protected secondary), each with
    the state it leaves and the regions it reached. Aurora fails over or switches over only to a protected
    secondary; a failover leaves the old writer's region to be re-protected by a failback once it returns."""
    gates, writer, protected = state
    partner = topology.partner(writer)
    found = [((run(topology, gates, writer, BOTH), writer, True), BOTH)]  # failback: re-protect the partner
    if protected:
        found += [((run(topology, gates, partner, BOTH), partner, True), BOTH),  # switchover
                  ((run(topology, gates, partner, frozenset({partner})), partner, False), frozenset({partner}))]
    return found


def reachable_states(topology: Topology) -> set[State]:
    """Every state some sequence of runbooks leaves, from the deployed estate (both gates open, the primary writing,
    the DR region a protected secondary)."""
    start: State = (((PRIMARY, "open"), (DR, "open")), PRIMARY, True)
    seen, todo = {start}, [start]
    while todo:
        for after, _ in runs(topology, todo.pop()):
            if after not in seen:
                seen.add(after)
                todo.append(after)
    return seen


@pytest.mark.parametrize(("writer", "dark"), list(product((PRIMARY, DR), (None, PRIMARY, DR))))
def test_the_gate_rule_lets_dns_answer_the_writer_and_any_future_failover_target(
        topology: Topology, writer: str, dark: str | None) -> None:
    answering = BOTH - {dark}
    checked = 0
    for state in reachable_states(topology):
        for (gates, new_writer, protected), reached in runs(topology, state):
            if (new_writer, reached) != (writer, answering):
                continue
            checked += 1
            assert dns(topology, gates, reached) == writer, (state, gates)
            if protected:  # the writer's region dies now: a failover from the partner alone lets it into DNS
                partner = topology.partner(writer)
                after = run(topology, gates, partner, frozenset({partner}))
                assert dns(topology, after, frozenset({partner})) == partner, (state, gates, after)
    # A run never leaves its writer dark; every other combination is reached by some sequence.
    assert (checked == 0) == (dark == writer)


@pytest.mark.parametrize(("writer", "dark", "primary_gate", "dr_gate"), [
    (PRIMARY, None, "open", "open"),
    (PRIMARY, DR, "open", "closed"),
    (DR, None, "closed", "open"),
    (DR, PRIMARY, "closed", "open"),
])
def test_the_gate_rule_closes_the_primary_only_while_dr_writes_and_the_secondary_only_while_dr_is_dark(
        topology: Topology, writer: str, dark: str | None, primary_gate: str, dr_gate: str) -> None:
    assert traffic.desired_gates(topology, writer, BOTH - {dark}) == {PRIMARY: primary_gate, DR: dr_gate}


def test_route53_answers_the_primary_when_both_records_are_unhealthy(topology: Topology) -> None:
    assert traffic.route53_answer(PRIMARY, DR, {PRIMARY: False, DR: False}) == PRIMARY


def test_an_unknown_gate_that_decides_leaves_dns_unknown(topology: Topology) -> None:
    assert traffic.dns_answers(topology, {PRIMARY: False, DR: True}, {PRIMARY: "closed", DR: None}) == {PRIMARY, DR}


def test_the_old_switch_back_strands_dns_and_the_forecast_says_so(topology: Topology) -> None:
    """What the game day used to leave (the DR gate closed in the primary): a failover could not let DR in."""
    gates = {PRIMARY: traffic.GateReading(region=PRIMARY, alarm_region=DR, state="open", known_from="alarm",
                                          detail="alarm OK"),
             DR: traffic.GateReading(region=DR, alarm_region=PRIMARY, state="closed", known_from="recorded",
                                     detail="recorded")}
    forecast = traffic.failover_forecast(topology, DR, gates)
    assert forecast.lets_target_in is False
    assert forecast.sentence.startswith(f"failover to {DR}: DNS would stay on {PRIMARY}")
