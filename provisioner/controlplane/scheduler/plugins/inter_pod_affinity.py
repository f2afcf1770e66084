"""InterPodAffinity (pre-filter, filter): required pod affinity and anti-affinity per topology domain.

Pre-filter walks the snapshot once and records, per term, the topology domains (`topologyKey=value`)
that hold matching pods, plus the domains where an existing pod's anti-affinity rejects this pod
(anti-affinity is symmetric). Filter then only compares a node's labels with those sets.
"""

from __future__ import annotations

from dataclasses import dataclass

from provisioner.controlplane.scheduler.framework import ALL_EVENTS, SUCCESS, Code, CycleState, Status, register
from provisioner.controlplane.scheduler.snapshot import AffinityTerm, NodeInfo, PodInfo, Snapshot

__all__ = ["AFFINITY_REASON", "ANTI_AFFINITY_REASON", "EXISTING_ANTI_AFFINITY_REASON", "InterPodAffinity"]

AFFINITY_REASON = "node(s) didn't match pod affinity rules"
ANTI_AFFINITY_REASON = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY_REASON = "node(s) didn't satisfy existing pods anti-affinity rules"
_STATE_KEY = "InterPodAffinity/domains"


@dataclass(frozen=True)
class _Domains:
    existing_anti: frozenset[tuple[str, str]]
    affinity: tuple[frozenset[str], ...]  # per affinity term: topology values holding a matching pod
    anti_affinity: tuple[frozenset[str], ...]
    first_of_its_group: bool  # no pod matches any affinity term, but the pod matches its own terms


def _domains(terms: tuple[AffinityTerm, ...], snapshot: Snapshot, pod: PodInfo) -> tuple[frozenset[str], ...]:
    found: list[set[str]] = [set() for _ in terms]
    for node in snapshot.nodes:
        for i, term in enumerate(terms):
            value = node.labels.get(term.topology_key)
            if value is not None and value not in found[i] and any(
                p.key != pod.key and term.matches(p) for p in node.pods
            ):
                found[i].add(value)
    return tuple(frozenset(f) for f in found)


@register
class InterPodAffinity:
    name = "InterPodAffinity"
    events = ALL_EVENTS

    def pre_filter(self, pod: PodInfo, snapshot: Snapshot, state: CycleState) -> Status:
        if not (pod.affinity_terms or pod.anti_affinity_terms or snapshot.with_anti_affinity):
            return Status(Code.SKIP)
        existing = frozenset(
            (term.topology_key, node.labels[term.topology_key])
            for node in snapshot.with_anti_affinity
            for other in node.pods
            if other.key != pod.key
            for term in other.anti_affinity_terms
            if term.topology_key in node.labels and term.matches(pod)
        )
        affinity = _domains(pod.affinity_terms, snapshot, pod)
        first = not any(affinity) and all(term.matches(pod) for term in pod.affinity_terms)
        anti = _domains(pod.anti_affinity_terms, snapshot, pod)
        state.write(_STATE_KEY, _Domains(existing, affinity, anti, first))
        return SUCCESS

    def filter(self, pod: PodInfo, node: NodeInfo, state: CycleState) -> Status:
        domains: _Domains = state.read(_STATE_KEY)
        if any(node.labels.get(key) == value for key, value in domains.existing_anti):
            return Status(Code.UNSCHEDULABLE, (EXISTING_ANTI_AFFINITY_REASON,))
        for term, values in zip(pod.affinity_terms, domains.affinity, strict=True):
            value = node.labels.get(term.topology_key)
            if value is None or (value not in values and not domains.first_of_its_group):
                return Status(Code.UNRESOLVABLE, (AFFINITY_REASON,))
        for term, values in zip(pod.anti_affinity_terms, domains.anti_affinity, strict=True):
            if node.labels.get(term.topology_key) in values:
                return Status(Code.UNSCHEDULABLE, (ANTI_AFFINITY_REASON,))
        return SUCCESS
