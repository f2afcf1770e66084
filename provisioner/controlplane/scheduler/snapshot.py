"""The scheduler's parsed, immutable view of the cluster: `PodInfo`, `NodeInfo` and the per-cycle `Snapshot`.

Pods and nodes are parsed from API dicts once, here, at the edge; plugins only read these values.
`NodeInfo` is replaced (never edited) when a pod lands on or leaves a node, so a `Snapshot` taken at
the start of a cycle stays valid while the cache moves on.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from provisioner.controlplane.apiserver.selectors import (
    LabelSelector,
    Requirement,
    label_selector_from_dict,
    label_selector_from_map,
    requirement_from_expression,
)
from provisioner.controlplane.quantity import parse_quantity

__all__ = [
    "AffinityTerm",
    "NodeInfo",
    "NodeSelectorTerm",
    "PodInfo",
    "Resources",
    "Snapshot",
    "Taint",
    "Toleration",
    "normalize_image",
]

DEFAULT_MILLI_CPU_REQUEST = 100  # what scoring assumes for a container without requests (as Kubernetes does)
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Resources:
    milli_cpu: int = 0
    memory: int = 0
    pods: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.milli_cpu + other.milli_cpu, self.memory + other.memory, self.pods + other.pods)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.milli_cpu - other.milli_cpu, self.memory - other.memory, self.pods - other.pods)

    def max(self, other: Resources) -> Resources:
        return Resources(
            max(self.milli_cpu, other.milli_cpu), max(self.memory, other.memory), max(self.pods, other.pods)
        )

    @classmethod
    def from_list(cls, values: Mapping[str, Any] | None, *, pods: int = 0) -> Resources:
        """From a ResourceList (`{"cpu": "500m", "memory": "1Gi", "pods": "110"}`)."""
        values = values or {}
        cpu = math.ceil(parse_quantity(str(values["cpu"])) * 1000) if "cpu" in values else 0
        memory = math.ceil(parse_quantity(str(values["memory"]))) if "memory" in values else 0
        count = int(parse_quantity(str(values["pods"]))) if "pods" in values else pods
        return cls(cpu, memory, count)


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str
    effect: str

    def __str__(self) -> str:
        return f"{{{self.key}: {self.value}}}"


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""

    def tolerates(self, taint: Taint) -> bool:
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True
        return bool(self.key) and self.value == taint.value


@dataclass(frozen=True)
class AffinityTerm:
    """One required pod (anti-)affinity term: pods matching `selector` in `namespaces`, per `topology_key`."""

    selector: LabelSelector
    namespaces: frozenset[str]
    topology_key: str

    def matches(self, pod: PodInfo) -> bool:
        return pod.namespace in self.namespaces and self.selector.matches(pod.labels)


@dataclass(frozen=True)
class NodeSelectorTerm:
    """One of node affinity's ORed terms: label expressions and `metadata.name` field expressions, ANDed."""

    expressions: tuple[Requirement, ...]
    fields: tuple[Requirement, ...]

    def matches(self, node: NodeInfo) -> bool:
        if not self.expressions and not self.fields:
            return False  # an empty term matches no node
        name = {"metadata.name": node.name}
        return all(r.matches(node.labels) for r in self.expressions) and all(r.matches(name) for r in self.fields)

    @classmethod
    def from_dict(cls, term: Mapping[str, Any]) -> NodeSelectorTerm:
        return cls(
            tuple(requirement_from_expression(e, allow_numeric=True) for e in term.get("matchExpressions") or []),
            tuple(requirement_from_expression(e) for e in term.get("matchFields") or []),
        )


def normalize_image(name: str) -> str:
    """`busybox` and `busybox:latest` are the same image; digests and explicit tags stay as they are."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last or "@" in last else f"{name}:latest"


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What scheduling needs to know about a pod, parsed once."""

    key: str
    namespace: str
    name: str
    uid: str
    labels: Mapping[str, str]
    node_name: str
    requests: Resources
    score_requests: Resources
    host_ports: frozenset[tuple[str, str, int]]
    images: tuple[str, ...]
    owner_uid: str
    tolerations: tuple[Toleration, ...]
    node_selector: LabelSelector
    node_affinity_terms: tuple[NodeSelectorTerm, ...]
    affinity_terms: tuple[AffinityTerm, ...]
    anti_affinity_terms: tuple[AffinityTerm, ...]

    @classmethod
    def from_pod(cls, pod: Mapping[str, Any]) -> PodInfo:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        namespace = meta.get("namespace", "default")
        containers = spec.get("containers") or []
        requests, score = Resources(pods=1), Resources(pods=1)
        for c in containers:
            own = _container_requests(c)
            requests += own
            score += Resources(
                own.milli_cpu or DEFAULT_MILLI_CPU_REQUEST, own.memory or DEFAULT_MEMORY_REQUEST, 0
            )
        for c in spec.get("initContainers") or []:
            own = _container_requests(c) + Resources(pods=1)
            requests, score = requests.max(own), score.max(own)
        ports = frozenset(
            (p.get("protocol", "TCP"), p.get("hostIP", "") or "0.0.0.0", int(p["hostPort"]))
            for c in containers
            for p in c.get("ports") or []
            if p.get("hostPort")
        )
        owner = next((o.get("uid", "") for o in meta.get("ownerReferences") or [] if o.get("controller")), "")
        affinity = spec.get("affinity") or {}
        required = ((affinity.get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")) or {}
        return cls(
            key=f"{namespace}/{meta['name']}",
            namespace=namespace,
            name=meta["name"],
            uid=meta.get("uid", ""),
            labels=MappingProxyType(dict(meta.get("labels") or {})),
            node_name=spec.get("nodeName") or "",
            requests=requests,
            score_requests=score,
            host_ports=ports,
            images=tuple(normalize_image(c["image"]) for c in containers if c.get("image")),
            owner_uid=owner,
            tolerations=tuple(
                Toleration(t.get("key", ""), t.get("operator", "Equal"), t.get("value", ""), t.get("effect", ""))
                for t in spec.get("tolerations") or []
            ),
            node_selector=label_selector_from_map(spec.get("nodeSelector") or {}),
            node_affinity_terms=tuple(NodeSelectorTerm.from_dict(t) for t in required.get("nodeSelectorTerms") or ()),
            affinity_terms=_affinity_terms(affinity.get("podAffinity"), namespace),
            anti_affinity_terms=_affinity_terms(affinity.get("podAntiAffinity"), namespace),
        )


def _container_requests(container: Mapping[str, Any]) -> Resources:
    resources = container.get("resources") or {}
    limits = resources.get("limits") or {}
    requests = {**{k: v for k, v in limits.items() if k in ("cpu", "memory")}, **(resources.get("requests") or {})}
    return Resources.from_list(requests)


def _affinity_terms(section: Mapping[str, Any] | None, namespace: str) -> tuple[AffinityTerm, ...]:
    terms = (section or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or []
    return tuple(
        AffinityTerm(
            selector=label_selector_from_dict(term.get("labelSelector")),
            namespaces=frozenset(term.get("namespaces") or [namespace]),
            topology_key=term["topologyKey"],
        )
        for term in terms
    )


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One node and the pods on it (bound or assumed), with their totals precomputed."""

    name: str
    labels: Mapping[str, str]
    unschedulable: bool
    taints: tuple[Taint, ...]
    allocatable: Resources
    images: Mapping[str, int]  # image name -> size in bytes, from status.images
    pods: tuple[PodInfo, ...] = ()
    requested: Resources = Resources()
    score_requested: Resources = Resources()
    used_ports: frozenset[tuple[str, str, int]] = frozenset()
    has_anti_affinity: bool = False

    @classmethod
    def from_node(cls, node: Mapping[str, Any], pods: Iterable[PodInfo] = ()) -> NodeInfo:
        spec, status = node.get("spec") or {}, node.get("status") or {}
        info = cls(
            name=node["metadata"]["name"],
            labels=MappingProxyType(dict(node["metadata"].get("labels") or {})),
            unschedulable=bool(spec.get("unschedulable")),
            taints=tuple(Taint(t["key"], t.get("value", ""), t["effect"]) for t in spec.get("taints") or []),
            allocatable=Resources.from_list(status.get("allocatable") or status.get("capacity")),
            images=MappingProxyType({normalize_image(n): int(image.get("sizeBytes") or 0)
                                     for image in status.get("images") or [] for n in image.get("names") or []}),
        )
        for pod in pods:
            info = info.with_pod(pod)
        return info

    def with_node(self, node: Mapping[str, Any]) -> NodeInfo:
        """The same pods on an updated Node object."""
        return NodeInfo.from_node(node, self.pods)



    def with_pod(self, pod: PodInfo) -> NodeInfo:
        rest = self.without_pod(pod.key)
        return replace(
            rest,
            pods=(*rest.pods, pod),
            requested=rest.requested + pod.requests,
            score_requested=rest.score_requested + pod.score_requests,
            used_ports=rest.used_ports | pod.host_ports,
            has_anti_affinity=rest.has_anti_affinity or bool(pod.anti_affinity_terms),
        )

    def without_pod(self, key: str) -> NodeInfo:
        if not any(p.key == key for p in self.pods):
            return self
        pods = tuple(p for p in self.pods if p.key != key)
        return replace(
            self,
            pods=pods,
            requested=sum((p.requests for p in pods), Resources()),
            score_requested=sum((p.score_requests for p in pods), Resources()),
            used_ports=frozenset(port for p in pods for port in p.host_ports),
            has_anti_affinity=any(p.anti_affinity_terms for p in pods),
        )


@dataclass(frozen=True)
class Snapshot:
    """The nodes as they were when the cycle started; `nodes` keeps a stable order for round-robin filtering."""

    nodes: Sequence[NodeInfo]
    with_anti_affinity: tuple[NodeInfo, ...]  # nodes running a pod with required anti-affinity

    @classmethod
    def of(cls, nodes: Iterable[NodeInfo]) -> Snapshot:
        ordered = tuple(nodes)
        return cls(ordered, tuple(n for n in ordered if n.has_anti_affinity))

    @functools.cached_property
    def by_name(self) -> Mapping[str, NodeInfo]:
        """Built on first use only: a scheduling cycle does not need it."""
        return MappingProxyType({n.name: n for n in self.nodes})
