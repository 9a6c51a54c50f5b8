"""A plan's dependency graph as nested sequences and parallel groups: the shape a Step Functions definition can draw.

Step Functions has no "start when these three are done" between branches, only `Parallel` (all branches, then go on)
and sequence. A plan whose graph is series-parallel (every runbook here) decomposes into exactly those two without
adding or losing an ordering, so the execution graph in the console *is* the plan and the critical path is the same.
A graph that is not series-parallel (an N: a->c, b->c, b->d) cannot be drawn exactly; it gets the smallest honest
over-approximation (its first steps together, then the rest), and `implied_order` lets a test see the difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from graphlib import TopologicalSorter

from dr_runbooks.engine.plan import Plan


@dataclass(frozen=True)
class Leaf:
    step: str


@dataclass(frozen=True)
class Sequence:
    parts: tuple[Shape, ...]


@dataclass(frozen=True)
class Together:
    branches: tuple[Shape, ...]


Shape = Leaf | Sequence | Together


def shape_of(plan: Plan) -> Shape:
    graph = plan.graph()
    order = tuple(TopologicalSorter(graph).static_order())
    return _decompose(frozenset(graph), graph, _ancestors(graph), order)


def _ancestors(graph: Mapping[str, tuple[str, ...]]) -> dict[str, frozenset[str]]:
    found: dict[str, frozenset[str]] = {}
    for name in TopologicalSorter(graph).static_order():
        found[name] = frozenset(graph[name]).union(*(found[parent] for parent in graph[name]))
    return found


def _decompose(nodes: frozenset[str], graph: Mapping[str, tuple[str, ...]],
               ancestors: Mapping[str, frozenset[str]], order: tuple[str, ...]) -> Shape:
    ordered = [name for name in order if name in nodes]
    if len(ordered) == 1:
        return Leaf(ordered[0])
    components = _components(nodes, graph)
    if len(components) > 1:
        return Together(tuple(_decompose(part, graph, ancestors, order) for part in components))
    for name in ordered:
        before = ancestors[name] & nodes
        after = frozenset(other for other in nodes if name in ancestors[other])
        if len(before) + len(after) + 1 == len(nodes):  # comparable with every other step: a cut of the sequence
            parts = [_decompose(before, graph, ancestors, order)] if before else []
            parts.append(Leaf(name))
            if after:
                parts.append(_decompose(after, graph, ancestors, order))
            return _flat(parts)
    first = frozenset(name for name in nodes if not ancestors[name] & nodes)
    return _flat([_decompose(first, graph, ancestors, order), _decompose(nodes - first, graph, ancestors, order)])


def _flat(parts: list[Shape]) -> Sequence:
    flat: list[Shape] = []
    for part in parts:
        flat.extend(part.parts if isinstance(part, Sequence) else (part,))
    return Sequence(tuple(flat))


def _components(nodes: frozenset[str], graph: Mapping[str, tuple[str, ...]]) -> list[frozenset[str]]:
    neighbours: dict[str, set[str]] = {name: set() for name in nodes}
    for name in nodes:
        for parent in graph[name]:
            if parent in nodes:
                neighbours[name].add(parent)
                neighbours[parent].add(name)
    components: list[frozenset[str]] = []
    unseen = set(nodes)
    for name in sorted(nodes):
        if name not in unseen:
            continue
        found, frontier = {name}, [name]
        while frontier:
            for other in neighbours[frontier.pop()] - found:
                found.add(other)
                frontier.append(other)
        unseen -= found
        components.append(frozenset(found))
    return components


def implied_order(shape: Shape) -> set[tuple[str, str]]:
    """Every (earlier, later) pair the shape enforces: compare it with the plan's transitive dependencies."""
    pairs: set[tuple[str, str]] = set()
    if isinstance(shape, Sequence):
        for index, part in enumerate(shape.parts):
            pairs |= implied_order(part)
            for later in shape.parts[index + 1:]:
                pairs |= {(a, b) for a in steps_of(part) for b in steps_of(later)}
    elif isinstance(shape, Together):
        for branch in shape.branches:
            pairs |= implied_order(branch)
    return pairs


def steps_of(shape: Shape) -> list[str]:
    if isinstance(shape, Leaf):
        return [shape.step]
    children = shape.parts if isinstance(shape, Sequence) else shape.branches
    return [name for child in children for name in steps_of(child)]
